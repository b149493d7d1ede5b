import http from "node:http";
import https from "node:https";
import net from "node:net";
import { isPrivateAddress, publicOnlyLookup, WebhookTargetError } from "./target-guard.js";

/** Keep-alive connections shared by every delivery of this process. */
const agents = { http: new http.Agent({ keepAlive: true, maxSockets: 256 }), https: new https.Agent({ keepAlive: true, maxSockets: 256 }) };

/** Most of a response body kept (for the delivery log); the rest is read and dropped. */
const MAX_RESPONSE_TEXT = 200;

/**
 * POSTs a webhook and resolves with the status and the start of the answer's body. Never follows
 * redirects (that would send the signed event elsewhere). Without `allowPrivate`, refuses hosts
 * that are or resolve to private addresses.
 */
export function postWebhook(
  url: string,
  headers: Readonly<Record<string, string>>,
  body: string,
  options: { signal: AbortSignal; allowPrivate: boolean },
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const host = target.hostname.replace(/^\[|\]$/g, "");
    if (!options.allowPrivate && net.isIP(host) && isPrivateAddress(host)) {
      reject(new WebhookTargetError(`${host} is a private address`));
      return;
    }
    const transport = target.protocol === "https:" ? https : http;
    const request = transport.request(
      target,
      {
        method: "POST",
        headers: { ...headers, "content-length": String(Buffer.byteLength(body)) },
        agent: target.protocol === "https:" ? agents.https : agents.http,
        signal: options.signal,
        ...(options.allowPrivate ? {} : { lookup: publicOnlyLookup }),
      },
      (response) => {
        let text = "";
        response.setEncoding("utf8");
        response.on("data", (chunk: string) => {
          if (text.length < MAX_RESPONSE_TEXT) text += chunk;
        });
        response.on("end", () => resolve({ status: response.statusCode ?? 0, text: text.slice(0, MAX_RESPONSE_TEXT) }));
        response.on("error", reject);
      },
    );
    request.on("error", reject);
    request.end(body);
  });
}
