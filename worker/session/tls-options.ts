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
