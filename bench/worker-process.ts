// A child process running N workers (worker/worker.ts, simulated GPUs) joined to
// the control plane at the given URL, so their event loop is not the control
// plane's. Started by the bench; stops on "stop", when the bench goes away, or
// after --max-seconds.
//
//   node --import tsx bench/worker-process.ts URL TOKEN COUNT GPU_SPEC NAME_PREFIX MAX_SECONDS
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseSimulatedGpuSpec } from "../worker/gpu/simulated-gpu.js";
import { createLogger } from "../worker/log.js";
import { startWorker, type Worker } from "../worker/worker.js";
import type { FromWorkers, ToWorkers } from "./ipc.js";

const [url = "", token = "", countText = "1", spec = "", namePrefix = "bench", maxSecondsText = "3600"] = process.argv.slice(2);
const send = (m: FromWorkers) => process.send?.(m);
const dataDirs: string[] = [];
const workers: Worker[] = [];
let stopping = false;

async function stop(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    await Promise.race([Promise.allSettled(workers.map((w) => w.shutdown(0))), new Promise((r) => setTimeout(r, 10_000))]);
    for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });
    const cpu = process.cpuUsage();
    send({ type: "stopped", cpuS: (cpu.user + cpu.system) / 1e6 });
  }
  // Let the IPC message go out before exiting.
  setTimeout(() => process.exit(code), 100);
  return new Promise<never>(() => {});
}

process.on("message", (m: ToWorkers) => {
  if (m.type === "stop") void stop(0);
});
process.on("disconnect", () => void stop(0));
setTimeout(() => void stop(3), Number(maxSecondsText) * 1000).unref();

try {
  const gpus = [parseSimulatedGpuSpec(spec)];
  const logger = createLogger(process.env.NGPU_BENCH_WORKER_LOG_LEVEL ?? "warn");
  const t0 = performance.now();
  const count = Math.max(1, Math.min(200, Number(countText)));
  for (let i = 0; i < count; i++) {
    const dataDir = mkdtempSync(join(process.env.NGPU_BENCH_WORKER_DATA_ROOT ?? tmpdir(), "ngpu-bench-worker-"));
    dataDirs.push(dataDir);
    workers.push(
      await startWorker(
        {
          controlPlaneUrl: url,
          enrollmentToken: token,
          name: `${namePrefix}-${i}`,
          dataDir,
          simulateGpus: gpus,
          nvidiaSmiPath: "nvidia-smi",
          maxConcurrentTasks: 0,
          logLevel: "warn",
        },
        { logger, appBaseEnv: process.env },
      ),
    );
  }
  const nodeIds = await Promise.all(workers.map((w) => w.ready));
  send({ type: "ready", nodeIds, startMs: performance.now() - t0 });
} catch (err) {
  send({ type: "failed", error: (err as Error).message });
  await stop(1);
}
