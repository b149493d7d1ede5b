import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHealth } from "../../control-plane/api/health.js";
import { type RpcServer, startRpcServer } from "../../control-plane/api/rpc-server.js";
import { createStaticSite } from "../../control-plane/web/static-site.js";

/** The dashboard's files beside the RPCs on one port, and CORS for browser callers on other origins. */
describe("static site and CORS on the RPC server", () => {
  const root = mkdtempSync(join(tmpdir(), "ngpu-site-"));
  const site = join(root, "site");
  let server: RpcServer;

  beforeAll(async () => {
    mkdirSync(site);
    writeFileSync(join(site, "index.html"), "<!doctype html><title>x</title>");
    writeFileSync(join(site, "embed.js"), "console.log(1)");
    writeFileSync(join(root, "secret.js"), "nope");
    const health = createHealth();
    server = await startRpcServer({ host: "127.0.0.1", port: 0, cors: true, routes: (r) => health.register(r), fallback: createStaticSite({ dir: site }) });
  });
  afterAll(async () => {
    await server.close();
    rmSync(root, { recursive: true, force: true });
  });

  it("serves the files by name and / as index.html, nothing outside the folder", async () => {
    const index = await fetch(`${server.url}/`);
    expect(index.status).toBe(200);
    expect(index.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(await index.text()).toContain("<title>x</title>");
    const script = await fetch(`${server.url}/embed.js`);
    expect(script.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect((await fetch(`${server.url}/..%2fsecret.js`)).status).toBe(404);
    expect((await fetch(`${server.url}/missing.js`)).status).toBe(404);
    expect((await fetch(`${server.url}/index.html`, { method: "HEAD" })).status).toBe(200);
    // An RPC the server lacks is a 404 (Connect: unimplemented), not a page.
    expect((await fetch(`${server.url}/ngpu.v1.Nope/Call`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" })).status).toBe(404);
  });

  it("answers a browser's preflight from another origin and lets it read Connect's headers", async () => {
    const preflight = await fetch(`${server.url}/grpc.health.v1.Health/Check`, {
      method: "OPTIONS",
      headers: { origin: "http://shop.example", "access-control-request-method": "POST", "access-control-request-headers": "authorization, content-type, connect-protocol-version" },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-origin")).toBe("*");
    expect(preflight.headers.get("access-control-allow-methods")).toContain("POST");
    const allowed = preflight.headers.get("access-control-allow-headers")!.toLowerCase();
    for (const h of ["authorization", "content-type", "connect-protocol-version", "connect-timeout-ms"]) expect(allowed).toContain(h);

    const call = await fetch(`${server.url}/grpc.health.v1.Health/Check`, {
      method: "POST",
      headers: { origin: "http://shop.example", "content-type": "application/json" },
      body: "{}",
    });
    expect(call.status).toBe(200);
    expect(call.headers.get("access-control-allow-origin")).toBe("*");
    expect(call.headers.get("access-control-expose-headers")).toContain("Grpc-Status");
    // Without an Origin (not a browser), no CORS headers.
    const plain = await fetch(`${server.url}/grpc.health.v1.Health/Check`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    expect(plain.headers.get("access-control-allow-origin")).toBeNull();
  });
});
