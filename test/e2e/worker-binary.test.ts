import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NodeState } from "../../gen/ngpu/v1/node_pb.js";
import { TaskState } from "../../gen/ngpu/v1/task_pb.js";
import { type NgpuClient, taskOutput } from "../../sdk/index.js";
import { startTestNetwork, type TestNetwork } from "../helpers/network.js";
import { builtin, client } from "../helpers/sdk.js";
import { eventually } from "../helpers/workers.js";

const ROOT = resolve(import.meta.dirname, "../..");
const FIXTURES = join(ROOT, "test/fixtures");

/**
 * The acceptance path: the worker built into one executable, copied alone
 * into an empty folder, joins a running control plane and runs a real app.
 */
describe("the single-file worker binary", () => {
  let net: TestNetwork;
  let ngpu: NgpuClient;
  let dir: string;
  let binary: string;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "ngpu-binary-"));
    binary = join(dir, "alone", "ngpu-worker");
    mkdirSync(join(dir, "alone"));
    await promisify(execFile)(process.execPath, ["--import", "tsx", join(ROOT, "scripts/build-worker.ts"), "--out", binary], { cwd: ROOT });
    net = await startTestNetwork();
    ngpu = client(net.url, net.apiKey);
  }, 180_000);

  afterAll(async () => {
    for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
    await ngpu?.close();
    await net?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Runs the binary from its own folder, with a PATH that has no node and no node_modules beside it. */
  function runWorker(args: string[], env: Record<string, string> = {}) {
    const child = spawn(binary, ["--control-plane", net.url, "--token", net.enrollmentToken, "--data-dir", join(dir, `data-${children.length}`), "--log-level", "warn", ...args], {
      cwd: join(dir, "alone"),
      env: { PATH: "/usr/bin:/bin", HOME: dir, ...env },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
    children.push(child);
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    return { child, exited, stderr: () => stderr };
  }

  const nodeNamed = (name: string) =>
    eventually(async () => {
      for await (const n of ngpu.nodes.listAll({ includeOffline: true })) if (n.name === name && n.state === NodeState.ONLINE) return n;
      return undefined;
    }, 20_000, `node ${name} online`);

  it("is one file, alone in its folder", () => {
    expect(readdirSync(join(dir, "alone"))).toEqual(["ngpu-worker"]);
  });

  it("joins, runs the demo app (a real image transform) and a builtin app, and drains on SIGTERM", async () => {
    await ngpu.apps.deploy({
      name: "style",
      runtime: { process: { command: [process.execPath, "--import", "tsx", join(ROOT, "examples/style-app/server.ts")], workingDir: ROOT } },
      gpu: { count: 1, minMemoryBytes: 8 * 1024 ** 3 },
      env: { STYLE_APP_STEP_DELAY_MS: "10", STYLE_APP_SETUP_MS: "0", STYLE_APP_WEBHOOK_INTERVAL_MS: "0" },
    });
    await ngpu.apps.deploy({ name: "echo", runtime: builtin("echo"), gpu: { count: 1 } });
    const w = runWorker(["--name", "binary-sim", "--simulate-gpu", "NVIDIA GeForce RTX 3090:24GiB"]);
    const node = await nodeNamed("binary-sim");
    expect(node.gpus.map((g) => g.model)).toEqual(["NVIDIA GeForce RTX 3090"]);

    const progress: number[] = [];
    const { task } = await ngpu.tasks.submit({ app: "style", input: { style: "sepia" } });
    const done = await ngpu.tasks.wait(task.id, { timeoutMs: 60_000, onEvent: (e) => e.case === "progress" && progress.push(e.value.percent) });
    expect(done.state, done.error).toBe(TaskState.SUCCEEDED);
    expect(String(taskOutput(done))).toMatch(/^data:image\/(jpeg|png);base64,/);
    expect(Buffer.from(String(taskOutput(done)).split(",")[1]!, "base64").length).toBeGreaterThan(1000);
    expect(Number(done.coldStartMs)).toBeGreaterThan(0);
    expect(progress.length).toBeGreaterThan(0);
    expect(progress).toEqual([...progress].sort((a, b) => a - b));
    // The app learnt its input schema from the instance's /openapi.json: bad input now fails at submit.
    await expect(ngpu.tasks.submit({ app: "style", input: { style: "cubism" } })).rejects.toMatchObject({ rawMessage: expect.stringMatching(/^input\.style: must be one of/) });

    // Warm now: no cold start the second time.
    const again = await ngpu.tasks.run({ app: "style", input: { style: "sketch" } }, { waitMs: 60_000 });
    expect(again.task.state).toBe(TaskState.SUCCEEDED);
    expect(Number(again.task.coldStartMs)).toBe(0);

    const echo = await ngpu.tasks.run({ app: "echo", input: { from: "binary" } });
    expect(taskOutput(echo.task)).toEqual({ from: "binary" });

    w.child.kill("SIGTERM");
    expect(await w.exited).toBe(0);
    await eventually(async () => ((await ngpu.nodes.get(node.id)).state === NodeState.OFFLINE ? true : undefined));
  });

  it("stops the app processes a SIGKILLed run left behind when it starts again", async () => {
    const dataDir = join(dir, "reaped");
    const args = ["--name", "reaper", "--simulate-gpu", "NVIDIA GeForce RTX 3090:24GiB", "--data-dir", dataDir];
    const first = runWorker(args);
    await nodeNamed("reaper");
    const done = await ngpu.tasks.run({ app: "style", input: { style: "blur" } }, { waitMs: 60_000 });
    expect(done.task.state).toBe(TaskState.SUCCEEDED);
    const pids = (JSON.parse(readFileSync(join(dataDir, "instances.json"), "utf8")) as { pids: number[] }).pids;
    expect(pids.length).toBeGreaterThan(0);
    const alive = (pid: number) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    first.child.kill("SIGKILL");
    await first.exited;
    // The warm app instance outlived its worker…
    expect(pids.every(alive)).toBe(true);
    const second = runWorker(args);
    // …until the worker came back.
    await eventually(() => (pids.every((p) => !alive(p)) ? true : undefined), 15_000, "leftover app processes to stop");
    second.child.kill("SIGTERM");
    await second.exited;
  });

  it("reads real GPUs through nvidia-smi (a replayed capture) and reports their telemetry", async () => {
    // The stand-in nvidia-smi replays the capture named in the environment it inherits.
    const { child } = runWorker(["--name", "smi-3090", "--nvidia-smi", join(FIXTURES, "bin/nvidia-smi")], {
      NVIDIA_SMI_FIXTURE: join(FIXTURES, "nvidia-smi/rtx3090-x2-nounits.csv"),
    });
    const node = await nodeNamed("smi-3090");
    expect(node.gpus.map((g) => [g.index, g.model, Number(g.memoryTotalBytes)])).toEqual([
      [0, "NVIDIA GeForce RTX 3090", 24576 * 1048576],
      [1, "NVIDIA GeForce RTX 3090", 24576 * 1048576],
    ]);
    const withTelemetry = await eventually(async () => {
      const n = await ngpu.nodes.get(node.id);
      return n.telemetry.length === 2 ? n : undefined;
    });
    for (const t of withTelemetry.telemetry) {
      expect(t.utilizationPercent).toBeDefined();
      expect(t.memoryUsedBytes).toBeDefined();
      // GeForce cards report no ECC: absent, never zero.
      expect(t.eccUncorrectedErrors).toBeUndefined();
    }
    expect(withTelemetry.gpuError).toBe("");
    child.kill("SIGTERM");
  });

  it("reports an nvidia-smi that fails instead of giving numbers", async () => {
    const { child } = runWorker(["--name", "no-driver", "--nvidia-smi", join(FIXTURES, "bin/nvidia-smi")], {
      NVIDIA_SMI_FIXTURE: join(FIXTURES, "nvidia-smi/driver-not-loaded.txt"),
      NVIDIA_SMI_EXIT: "9",
    });
    const node = await nodeNamed("no-driver");
    expect(node.gpus).toEqual([]);
    expect(node.telemetry).toEqual([]);
    expect(node.gpuError).toMatch(/^FAILED: .*couldn't communicate with the NVIDIA driver/s);
    child.kill("SIGTERM");
  });

  it("refuses to start without a token, naming the flag", async () => {
    const { stderr } = await promisify(execFile)(binary, ["--control-plane", net.url], { cwd: join(dir, "alone"), env: { PATH: "/usr/bin:/bin" } }).catch((e) => e as { stderr: string; code: number });
    expect(stderr).toMatch(/--token is required/);
  });
});
