import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseSimulatedGpuSpec } from "../../worker/gpu/simulated-gpu.js";
import { createLogger } from "../../worker/log.js";
import { startWorker, type Worker } from "../../worker/worker.js";
import type { TestNetwork } from "./network.js";

/** An in-process worker with simulated GPUs joined to the test network. */
export async function startTestWorker(
  net: Pick<TestNetwork, "url" | "enrollmentToken">,
  gpus: string[] = ["NVIDIA GeForce RTX 3090:24GiB"],
  options: { name?: string; maxConcurrentTasks?: number; url?: string } = {},
): Promise<Worker> {
  const dataDir = mkdtempSync(join(tmpdir(), "ngpu-worker-"));
  const worker = await startWorker(
    {
      controlPlaneUrl: options.url ?? net.url,
      enrollmentToken: net.enrollmentToken,
      name: options.name ?? "test-worker",
      dataDir,
      simulateGpus: gpus.map(parseSimulatedGpuSpec),
      nvidiaSmiPath: "nvidia-smi",
      maxConcurrentTasks: options.maxConcurrentTasks ?? 0,
      logLevel: "silent",
    },
    { logger: createLogger(process.env.NGPU_TEST_LOG_LEVEL ?? "silent"), appBaseEnv: process.env },
  );
  await worker.ready;
  // The data folder goes with the worker.
  return Object.assign(Object.create(worker) as Worker, {
    async shutdown(graceMs?: number) {
      await worker.shutdown(graceMs);
      rmSync(dataDir, { recursive: true, force: true });
    },
  });
}

/** Polls until check returns a value (not undefined), or fails after timeoutMs. */
export async function eventually<T>(check: () => Promise<T | undefined> | T | undefined, timeoutMs = 15_000, what = "condition"): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${lastError ? `: ${(lastError as Error).message}` : ""}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
