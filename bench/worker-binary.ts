// The worker binary (dist/ngpu-worker, a Node single executable): file size,
// start-up time of `--version` (spawn to exit), and the resident memory of a
// worker joined to a control plane with one simulated GPU, idle.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { cpuSince, cpuSnapshot } from "./cpu.js";
import { startBenchNetwork } from "./network.js";
import { Scope, sleep, waitFor } from "./scope.js";
import { median, r2, type Result } from "./stats.js";

export interface WorkerBinaryOptions {
  readonly startupRuns: number;
  readonly idleSeconds: number;
  /** Build dist/ngpu-worker first even if it exists. */
  readonly build: boolean;
}

export const WORKER_BINARY_DEFAULTS: WorkerBinaryOptions = { startupRuns: 20, idleSeconds: 5, build: false };

const ROOT = resolve(import.meta.dirname, "..");
const BINARY = join(ROOT, "dist/ngpu-worker");

function run(command: string, args: readonly string[], timeoutMs: number, cwd = ROOT): Promise<{ code: number | null; ms: number; stdout: string }> {
  return new Promise((resolveRun, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(command, [...args], { cwd, stdio: ["ignore", "pipe", "inherit"] });
    let stdout = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString("utf8")));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", (err) => (clearTimeout(timer), reject(err)));
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolveRun({ code, ms: Number(process.hrtime.bigint() - t0) / 1e6, stdout });
    });
  });
}

function statusKb(pid: number, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) : Number.NaN;
}

export async function runWorkerBinary(options: WorkerBinaryOptions): Promise<Result> {
  let buildS = Number.NaN;
  if (options.build || !existsSync(BINARY)) {
    const built = await run("npm", ["run", "--silent", "build:worker"], 600_000);
    if (built.code !== 0) throw new Error(`npm run build:worker failed (exit ${built.code})`);
    buildS = built.ms / 1000;
  }
  const sizeBytes = statSync(BINARY).size;

  // Start-up: spawn → exit of `--version`, after one untimed run (page cache).
  const first = await run(BINARY, ["--version"], 30_000);
  if (first.code !== 0 || !first.stdout.startsWith("ngpu-worker")) throw new Error(`${BINARY} --version failed: ${first.stdout}`);
  const startup: number[] = [];
  for (let i = 0; i < options.startupRuns; i++) startup.push((await run(BINARY, ["--version"], 30_000)).ms);

  // Idle RSS: a joined worker with one simulated GPU.
  const scope = new Scope();
  try {
    const net = await startBenchNetwork(scope);
    const dataDir = mkdtempSync(join(tmpdir(), "ngpu-bench-binary-"));
    scope.defer("worker data dir", () => rmSync(dataDir, { recursive: true, force: true }));
    const t0 = performance.now();
    const worker = spawn(
      BINARY,
      ["--control-plane", net.url, "--token", net.enrollmentToken, "--simulate-gpu", "NVIDIA GeForce RTX 3090:24GiB", "--data-dir", dataDir, "--name", "bench-binary", "--log-level", "error"],
      { stdio: ["ignore", "ignore", "inherit"] },
    );
    const pid = worker.pid;
    if (pid === undefined) throw new Error("could not start the worker binary");
    let exited = false;
    worker.on("exit", () => (exited = true));
    scope.defer("worker binary", async () => {
      if (exited) return;
      worker.kill("SIGTERM");
      await waitFor("worker binary exit", () => (exited ? true : undefined), 10_000, 50).catch(() => worker.kill("SIGKILL"));
    });
    await waitFor("the worker binary to join", async () => ((await net.cpStats()).connectedNodes === 1 ? true : undefined), 30_000, 20);
    const joinMs = performance.now() - t0;
    const cpu0 = cpuSnapshot([pid]);
    await sleep(options.idleSeconds * 1000);
    const cpu = cpuSince(cpu0);
    const rssKb = statusKb(pid, "VmRSS");
    const hwmKb = statusKb(pid, "VmHWM");
    return {
      part: "worker",
      binary: "dist/ngpu-worker",
      build_s: Number.isFinite(buildS) ? r2(buildS) : "not rebuilt (--build rebuilds)",
      size_mb: r2(sizeBytes / 1e6),
      startup_runs: startup.length,
      startup_version_median_ms: r2(median(startup)),
      startup_version_min_ms: r2(Math.min(...startup)),
      startup_version_max_ms: r2(Math.max(...startup)),
      spawn_to_joined_ms: Math.round(joinMs),
      idle_seconds: options.idleSeconds,
      idle_rss_mb: r2(rssKb / 1024),
      peak_rss_mb: r2(hwmKb / 1024),
      idle_cpu_pct_of_core: r2((100 * (cpu.pidCpuS.get(pid) ?? Number.NaN)) / cpu.seconds),
      machine_busy_pct: cpu.machineBusyPct,
    };
  } finally {
    await scope.close();
  }
}
