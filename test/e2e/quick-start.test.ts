import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { bufCurl } from "../helpers/buf-curl.js";

const ROOT = resolve(import.meta.dirname, "../..");

/**
 * The README's quick start as a newcomer runs it: `npm start` brings up the
 * embedded network, and the CLI example it prints completes the demo task.
 */
describe("npm start (the local network on the embedded default)", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "ngpu-quickstart-"));
  // The user's environment, minus anything that would point the network elsewhere.
  const env: NodeJS.ProcessEnv = { ...process.env, NGPU_DATA_DIR: dataDir, NGPU_LISTEN: "127.0.0.1:0" };
  delete env.DATABASE_URL;
  delete env.NATS_URL;
  // What `npm start` runs, started directly so Ctrl-C (SIGINT) reaches it as it would from a terminal.
  const [command, ...startArgs] = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).scripts.start as string).split(" ");
  let start: ChildProcess | undefined;

  afterAll(() => {
    if (start?.pid && start.exitCode === null) process.kill(-start.pid, "SIGKILL");
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("comes up, runs the printed CLI example to a real image, and stops cleanly on Ctrl-C", async () => {
    start = spawn(command === "node" ? process.execPath : command!, startArgs, { cwd: ROOT, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    start.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    start.stderr!.on("data", (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => start!.once("exit", (code) => r(code)));
    const deadline = Date.now() + 90_000;
    while (!out.includes("Press Ctrl-C to stop.")) {
      if (start.exitCode !== null || Date.now() > deadline) throw new Error(`npm start did not come up:\n${out}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(out).toContain("embedded PGlite");
    expect(out).toContain("local nats-server");
    const url = /API \(gRPC, gRPC-Web, Connect\): (\S+)/.exec(out)?.[1];
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    // The printed dashboard link serves the dashboard, built on the fly if it was missing.
    const dashboard = /dashboard: (\S+)/.exec(out)?.[1];
    expect(dashboard).toBe(`${url}/`);
    expect(await (await fetch(dashboard!)).text()).toContain("<ngpu-app></ngpu-app>");
    for (const script of ["app.js", "embed.js"]) expect((await fetch(`${url}/${script}`)).status).toBe(200);

    // The printed CLI example, word for word.
    const example = /CLI:\s+(npm run -s ngpu -- submit .*)$/m.exec(out)?.[1];
    expect(example).toBeDefined();
    const args = example!.split(" ");
    const outDir = join(dataDir, "out");
    args[args.indexOf("--output-dir") + 1] = outDir;
    const cli = await promisify(execFile)(args[0]!, args.slice(1), { cwd: ROOT, env, timeout: 90_000 });
    expect(cli.stdout).toContain("saved");
    const files = readdirSync(outDir);
    expect(files.length).toBe(1);
    const image = readFileSync(join(outDir, files[0]!));
    expect(image.subarray(0, 3)).toEqual(Buffer.from([0xff, 0xd8, 0xff])); // JPEG

    // The printed reflection example works too (buf curl stands in for grpcurl here).
    const key = JSON.parse(readFileSync(join(dataDir, "credentials.json"), "utf8")).apiKey as string;
    const listed = await bufCurl(["--http2-prior-knowledge", "--protocol", "grpc", "-H", `authorization: Bearer ${key}`, "-d", "{}", `${url}/ngpu.v1.NodeService/ListNodes`]);
    const nodes = JSON.parse(listed.stdout).nodes as Array<{ gpus: Array<{ model: string }> }>;
    expect(nodes).toHaveLength(2);
    // Every GPU model the dev network simulates has a price: its tasks are never billed 0.
    const priced = await bufCurl(["--http2-prior-knowledge", "--protocol", "grpc", "-H", `authorization: Bearer ${key}`, "-d", "{}", `${url}/ngpu.v1.UsageService/ListPrices`]);
    const prices = JSON.parse(priced.stdout).prices as Array<{ gpuModel: string; inForce?: boolean }>;
    for (const model of new Set(nodes.flatMap((n) => n.gpus.map((g) => g.model)))) {
      expect(prices.some((p) => p.gpuModel === model && p.inForce), model).toBe(true);
    }

    start.kill("SIGINT");
    expect(await exited).toBe(0);
    expect(existsSync(join(dataDir, "pglite"))).toBe(true);
  }, 180_000);
});
