import dns from "node:dns";
import net from "node:net";

/**
 * Addresses a webhook may not reach unless private targets are allowed: loopback, private
 * networks, link-local (cloud metadata at 169.254.169.254), CGNAT, unique-local, multicast and
 * unspecified. Otherwise anyone with an API key could make the control plane probe its own
 * network and read the answers in the delivery log.
 */
const PRIVATE = new net.BlockList();
for (const [prefix, bits] of [
  ["0.0.0.0", 8],
  ["10.0.0.0", 8],
  ["100.64.0.0", 10],
  ["127.0.0.0", 8],
  ["169.254.0.0", 16],
  ["172.16.0.0", 12],
  ["192.168.0.0", 16],
  ["224.0.0.0", 3],
] as const) {
  PRIVATE.addSubnet(prefix, bits, "ipv4");
}
for (const [prefix, bits] of [
  ["::", 127],
  ["fc00::", 7],
  ["fe80::", 10],
  ["ff00::", 8],
] as const) {
  PRIVATE.addSubnet(prefix, bits, "ipv6");
}

export function isPrivateAddress(address: string): boolean {
  const family = net.isIP(address);
  if (family === 0) return false;
  if (family === 6) {
    // An IPv4 address written as IPv6 (::ffff:127.0.0.1) is that IPv4 address.
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
    if (mapped) return PRIVATE.check(mapped[1]!, "ipv4");
    return PRIVATE.check(address, "ipv6");
  }
  return PRIVATE.check(address, "ipv4");
}

/**
 * Why a webhook URL may not be used on a network that keeps webhooks off private addresses, or
 * undefined when it may: its host is a private, loopback or link-local IP literal, or `localhost`
 * (or a name under it). Other names are checked again when delivering, on the address connected to.
 */
export function privateTargetProblem(url: string): string | undefined {
  const host = new URL(url).hostname.replace(/^\[|\]$/g, "").toLowerCase();
  if (host === "localhost" || host.endsWith(".localhost")) return `${host} is loopback; webhooks must reach a public address`;
  if (net.isIP(host) !== 0 && isPrivateAddress(host)) return `${host} is a private, loopback or link-local address; webhooks must reach a public address`;
  return undefined;
}

/** A delivery refused because its target is private: no retry can change that, so it fails at once. */
export class WebhookTargetError extends Error {
  override readonly name = "WebhookTargetError";
}

/**
 * A `lookup` for http.request that refuses names resolving to a private address. Checking the
 * address actually connected to (not a separate look-up before it) leaves no gap for a name
 * that resolves differently the second time.
 */
export const publicOnlyLookup: net.LookupFunction = (hostname, options, callback) => {
  dns.lookup(hostname, { ...options, all: true }, (err, addresses) => {
    if (err) return callback(err, "", 0);
    const list = addresses as dns.LookupAddress[];
    const bad = list.find((a) => isPrivateAddress(a.address));
    if (bad) return callback(new WebhookTargetError(`${hostname} resolves to a private address (${bad.address})`), "", 0);
    if (options.all) return (callback as unknown as (e: null, a: dns.LookupAddress[]) => void)(null, list);
    const first = list[0]!;
    callback(null, first.address, first.family);
  });
};
