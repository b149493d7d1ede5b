import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A throwaway CA and a server certificate it signed for 127.0.0.1 and localhost (made with the openssl CLI). */
export interface TestCerts {
  readonly caPem: Buffer;
  readonly certPem: Buffer;
  readonly keyPem: Buffer;
  readonly certFile: string;
  readonly keyFile: string;
  readonly caFile: string;
  /** SHA-256 fingerprint of the server certificate, "AB:CD:…". */
  readonly fingerprint256: string;
  remove(): void;
}

export function makeTestCerts(): TestCerts {
  const dir = mkdtempSync(join(tmpdir(), "ngpu-certs-"));
  const p = (name: string) => join(dir, name);
  const ssl = (...args: string[]) => execFileSync("openssl", args, { stdio: ["ignore", "pipe", "pipe"] }).toString();
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  ssl("req", "-x509", ...ec, "-keyout", p("ca.key"), "-out", p("ca.crt"), "-days", "1", "-subj", "/CN=ngpu test CA");
  ssl("req", ...ec, "-keyout", p("server.key"), "-out", p("server.csr"), "-subj", "/CN=127.0.0.1");
  writeFileSync(p("ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  ssl("x509", "-req", "-in", p("server.csr"), "-CA", p("ca.crt"), "-CAkey", p("ca.key"), "-CAcreateserial", "-out", p("server.crt"), "-days", "1", "-extfile", p("ext.cnf"));
  const fingerprint = ssl("x509", "-in", p("server.crt"), "-noout", "-fingerprint", "-sha256").trim().replace(/^.*=/, "").toUpperCase();
  return {
    caPem: readFileSync(p("ca.crt")),
    certPem: readFileSync(p("server.crt")),
    keyPem: readFileSync(p("server.key")),
    certFile: p("server.crt"),
    keyFile: p("server.key"),
    caFile: p("ca.crt"),
    fingerprint256: fingerprint,
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
