import http2 from "node:http2";
import https from "node:https";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCliContext } from "../../cli/context.js";
import { buildProgram, runProgram } from "../../cli/program.js";
import { loadControlPlaneConfig } from "../../control-plane/config.js";
import { parseSimulatedGpuSpec } from "../../worker/gpu/simulated-gpu.js";
import { parseWorkerArgs } from "../../worker/config.js";
import { createLogger } from "../../worker/log.js";
import { controlPlaneTlsOptions, untrustedCertificateHint } from "../../worker/session/tls-options.js";
import { Code, ConnectError } from "@connectrpc/connect";
import { startWorker, type Worker } from "../../worker/worker.js";
import { makeTestCerts, type TestCerts } from "../helpers/certs.js";
import { startTestNetwork, type TestNetwork } from "../helpers/network.js";

/** Opens an HTTP/2 TLS session and reports the protocol ALPN chose, or the error. */
function h2Connect(url: string, options: http2.SecureClientSessionOptions): Promise<{ alpn: string } | { error: string }> {
  return new Promise((resolve) => {
    const session = http2.connect(url, options);
    session.once("connect", () => {
      const alpn = String((session.socket as unknown as { alpnProtocol?: string }).alpnProtocol);
      session.close();
      resolve({ alpn });
    });
    session.once("error", (err: NodeJS.ErrnoException) => {
      session.destroy();
      resolve({ error: `${err.code ?? ""} ${err.message}` });
    });
  });
}

describe("security: TLS for the control plane and its workers", () => {
  let certs: TestCerts;
  let net: TestNetwork;
  const dirs: string[] = [];
  const workers: Worker[] = [];

  beforeAll(async () => {
    certs = makeTestCerts();
    net = await startTestNetwork({ tls: { cert: certs.certPem, key: certs.keyPem } });
  });
  afterAll(async () => {
    for (const w of workers) await w.shutdown(1_000);
    await net.close();
    certs.remove();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it("serves https, with ALPN choosing HTTP/2 or HTTP/1.1 on one port", async () => {
    expect(net.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(await h2Connect(net.url, { ca: certs.caPem })).toEqual({ alpn: "h2" });
    // HTTP/1.1 (a browser, curl): a Connect JSON call.
    const body = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = https.request(`${net.url}/ngpu.v1.AppService/ListApps`, {
        method: "POST",
        ca: certs.caPem,
        headers: { "content-type": "application/json", authorization: `Bearer ${net.apiKey}` },
      }, (res) => {
        let text = "";
        res.setEncoding("utf8").on("data", (c: string) => (text += c)).on("end", () => resolve({ status: res.statusCode ?? 0, text }));
      });
      req.on("error", reject);
      req.end("{}");
    });
    expect(body.status).toBe(200);
    expect(JSON.parse(body.text)).toEqual({});
  });

  it("a client that does not trust the CA cannot connect", async () => {
    const result = await h2Connect(net.url, {});
    expect("error" in result && result.error).toMatch(/SELF_SIGNED|UNABLE_TO_VERIFY|unable to get local issuer/i);
  });

  it("the CLI, not trusting the CA, says so and names the fix", async () => {
    const stderr = new PassThrough();
    let text = "";
    stderr.setEncoding("utf8").on("data", (c: string) => (text += c));
    const ctx = createCliContext({ stdout: new PassThrough(), stderr, onInterrupt: () => {}, exitNow: () => {} });
    const code = await runProgram(buildProgram(ctx), ctx, ["node", "ngpu", "--url", net.url, "--api-key", net.apiKey, "apps", "list"]);
    expect(code).toBe(1);
    expect(text).toContain("TLS certificate is not trusted");
    expect(text).toContain("NODE_EXTRA_CA_CERTS");
    expect(text).not.toContain("internal");
    // The worker's log says the same, with its own option.
    const cause = Object.assign(new Error("self-signed certificate"), { code: "DEPTH_ZERO_SELF_SIGNED_CERT" });
    expect(untrustedCertificateHint(new ConnectError("self-signed certificate", Code.Internal, undefined, undefined, cause))).toContain("--ca-file");
    expect(untrustedCertificateHint(new ConnectError("refused", Code.Unavailable))).toBeUndefined();
  });

  it("a worker trusting the CA file joins over TLS; a pinned certificate must match", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "ngpu-tls-worker-"));
    dirs.push(dataDir);
    const config = parseWorkerArgs(
      ["--control-plane", net.url, "--token", net.enrollmentToken, "--data-dir", dataDir, "--ca-file", certs.caFile, "--tls-pin", certs.fingerprint256.replace(/:/g, "").toLowerCase(), "--log-level", "silent"],
      {},
      "tls-host",
    );
    if (typeof config === "string") throw new Error("unexpected help");
    expect(config.tls?.pinSha256).toBe(certs.fingerprint256);
    const worker = await startWorker({ ...config, simulateGpus: [parseSimulatedGpuSpec("NVIDIA GeForce RTX 3090:24GiB")] }, { logger: createLogger("silent"), appBaseEnv: {} });
    workers.push(worker);
    const nodeId = await worker.ready;
    expect(nodeId).toMatch(/^node_/);
    // Restarted without a token, it rejoins as the same node: its data dir holds its identity.
    await worker.shutdown(1_000);
    const tokenless = ["--control-plane", net.url, "--data-dir", dataDir, "--ca-file", certs.caFile, "--log-level", "silent"];
    const again = parseWorkerArgs(tokenless, {}, "tls-host");
    if (typeof again === "string") throw new Error("unexpected help");
    const rejoined = await startWorker({ ...again, simulateGpus: [parseSimulatedGpuSpec("NVIDIA GeForce RTX 3090:24GiB")] }, { logger: createLogger("silent"), appBaseEnv: {} });
    workers.push(rejoined);
    expect(await rejoined.ready).toBe(nodeId);
    const fresh = mkdtempSync(join(tmpdir(), "ngpu-tls-worker-"));
    dirs.push(fresh);
    expect(() => parseWorkerArgs(["--control-plane", net.url, "--data-dir", fresh], {}, "h")).toThrow(/--token is required for a first join/);
    // The same check with another pin refuses the connection.
    const wrong = await h2Connect(net.url, controlPlaneTlsOptions({ ca: certs.caPem, pinSha256: "AB:".repeat(31) + "AB" }));
    expect("error" in wrong && wrong.error).toMatch(/not the pinned one/);
    expect(await h2Connect(net.url, controlPlaneTlsOptions({ ca: certs.caPem, pinSha256: certs.fingerprint256 }))).toEqual({ alpn: "h2" });
  });

  it("plaintext is for loopback only; TLS settings are checked at start", () => {
    const base = ["--token", "enr_x.y"];
    expect(() => parseWorkerArgs(["--control-plane", "http://10.0.0.5:7700", ...base], {}, "h")).toThrow(/plaintext http:\/\/ is only for loopback/);
    expect(parseWorkerArgs(["--control-plane", "http://10.0.0.5:7700", "--allow-plaintext", ...base], {}, "h")).toMatchObject({ controlPlaneUrl: "http://10.0.0.5:7700" });
    expect(parseWorkerArgs(["--control-plane", "http://127.0.0.1:7700", ...base], {}, "h")).toMatchObject({ controlPlaneUrl: "http://127.0.0.1:7700" });
    expect(() => parseWorkerArgs(["--control-plane", "https://cp:7700", "--tls-pin", "nope", ...base], {}, "h")).toThrow(/--tls-pin: must be a SHA-256 fingerprint/);
    expect(() => loadControlPlaneConfig({ DATABASE_URL: "postgres://x/y", NATS_URL: "nats://x", NGPU_TLS_CERT: certs.certFile })).toThrow(/NGPU_TLS_CERT and NGPU_TLS_KEY go together/);
    expect(() => loadControlPlaneConfig({ DATABASE_URL: "postgres://x/y", NATS_URL: "nats://x", NGPU_TLS_CERT: "/nope.pem", NGPU_TLS_KEY: certs.keyFile })).toThrow(/^NGPU_TLS_CERT: cannot read/);
    expect(loadControlPlaneConfig({ DATABASE_URL: "postgres://x/y", NATS_URL: "nats://x", NGPU_TLS_CERT: certs.certFile, NGPU_TLS_KEY: certs.keyFile }).tls?.cert.toString()).toContain("BEGIN CERTIFICATE");
  });
});
