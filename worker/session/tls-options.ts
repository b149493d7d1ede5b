import { checkServerIdentity, type PeerCertificate, type SecureContextOptions } from "node:tls";

/**
 * How the worker checks an https:// control plane: against its CA file (or the
 * system's CAs) and, when pinned, against one exact certificate too.
 */
export function controlPlaneTlsOptions(tls: { readonly ca?: Buffer; readonly pinSha256?: string } | undefined): SecureContextOptions & {
  checkServerIdentity?: (host: string, cert: PeerCertificate) => Error | undefined;
} {
  const pin = tls?.pinSha256;
  return {
    ...(tls?.ca ? { ca: tls.ca } : {}),
    ...(pin
      ? {
          checkServerIdentity: (host: string, cert: PeerCertificate) =>
            checkServerIdentity(host, cert) ?? (cert.fingerprint256 === pin ? undefined : new Error(`the control plane's certificate ${cert.fingerprint256} is not the pinned one (${pin})`)),
        }
      : {}),
  };
}

/** Node's codes for a server certificate that no trusted CA vouches for. */
const UNTRUSTED_CERTIFICATE_CODES: ReadonlySet<string> = new Set([
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_UNTRUSTED",
]);

/**
 * Node's code, when a connection failed because the control plane's certificate is not trusted
 * (looked for anywhere in the cause chain); undefined for any other failure.
 */
export function untrustedCertificateCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && UNTRUSTED_CERTIFICATE_CODES.has(code)) return code;
  }
  return undefined;
}

/**
 * What to do when a connection failed because the control plane's certificate is not trusted, or
 * undefined for any other failure. Retrying cannot fix it, so the worker's log says how.
 */
export function untrustedCertificateHint(err: unknown): string | undefined {
  const code = untrustedCertificateCode(err);
  return code === undefined
    ? undefined
    : `the control plane's TLS certificate is not trusted (${code}): start the worker with --ca-file ca.pem (env NGPU_TLS_CA) naming the CA that signed it`;
}
