// The nvidia-smi reader as a process runner, against the stand-in binary in
// test/fixtures/bin/nvidia-smi, which replays a capture chosen by environment.

import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";

import { afterEach, beforeEach, describe, expect, it } from "vitest";

import { GpuReadError, type GpuReadErrorCode } from "../../../worker/gpu/gpu-reader.js";
import { createNvidiaSmiReader, type NvidiaSmiReaderOptions } from "../../../worker/gpu/nvidia-smi.js";
import { BYTES_PER_MIB, GPU_QUERY_FIELDS } from "../../../worker/gpu/parse-query-csv.js";
import { corpusDir, ownFixture, standInNvidiaSmi } from "./fixture-paths.js";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "ngpu-nvidia-smi-"));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** A reader running the stand-in with these NVIDIA_SMI_* variables (the rest of the environment kept, for PATH). */
function standIn(vars: Record<string, string>, options: NvidiaSmiReaderOptions = {}) {
  return createNvidiaSmiReader({
    binary: standInNvidiaSmi,
    env: { ...process.env, NVIDIA_SMI_ARGS_FILE: join(dir, "args"), NVIDIA_SMI_PID_FILE: join(dir, "pid"), ...vars },
    now: () => 1_750_000_000_000,
    ...options,
  });
}

/** The argument lists the stand-in was called with, one per run. */
function calls(): string[][] {
  const file = join(dir, "args");
  if (!existsSync(file)) return [];
  return readFileSync(file, "utf8")
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as string[]);
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected the read to fail");
}

async function expectReadError(promise: Promise<unknown>, code: GpuReadErrorCode, ...fragments: string[]): Promise<GpuReadError> {
  const error = await rejection(promise);
  expect(error).toBeInstanceOf(GpuReadError);
  const readError = error as GpuReadError;
  expect(readError.code, readError.message).toBe(code);
  expect(readError.name).toBe("GpuReadError");
  for (const fragment of fragments) expect(readError.message).toContain(fragment);
  return readError;
}

/** Resolves once the condition holds; fails after timeoutMs. */
async function waitFor(condition: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("createNvidiaSmiReader", () => {
  it("runs one --query-gpu with the worker's fields and reads both GPUs", async () => {
    const reading = await standIn({ NVIDIA_SMI_FIXTURE: ownFixture("rtx3090-x2-nounits.csv") }).read();
    expect(reading.gpus.map((gpu) => gpu.uuid)).toStrictEqual([
      "GPU-3f2a9c1e-7b4d-4e8a-9c6f-1a2b3c4d5e6f",
      "GPU-8e7d6c5b-4a39-4281-b7f6-e5d4c3b2a190",
    ]);
    expect(reading.samples[0]).toMatchObject({ timeMs: 1_750_000_000_000, utilizationPercent: 98, memoryUsedBytes: 18230 * BYTES_PER_MIB });
    expect(calls()).toStrictEqual([[`--query-gpu=${GPU_QUERY_FIELDS.join(",")}`, "--format=csv,nounits"]]);
  });

  it("also reads output with units (--format=csv)", async () => {
    const reading = await standIn({ NVIDIA_SMI_FIXTURE: ownFixture("rtx3090-x2.csv") }).read();
    expect(reading.gpus[1]?.memoryTotalBytes).toBe(24576 * BYTES_PER_MIB);
  });

  it("finds nvidia-smi on PATH by default", async () => {
    const reader = createNvidiaSmiReader({
      env: {
        ...process.env,
        PATH: [dirname(standInNvidiaSmi), process.env.PATH ?? ""].join(delimiter),
        NVIDIA_SMI_FIXTURE: ownFixture("a100-mig-nounits.csv"),
      },
    });
    const reading = await reader.read();
    expect(reading.gpus.map((gpu) => gpu.migEnabled)).toStrictEqual([true, false]);
  });

  // The shared corpus is beside the repository on CI and dev machines; where it is not, there
  // is no such test (rather than a skipped one).
  const h100Bundle = join(corpusDir, "nvidia_gpu_exporter/internal/captures/linux-x86_64__nvidia-h100-80gb-hbm3__590.48.01.txt");
  if (existsSync(h100Bundle)) it("replays a real H100 capture", async () => {
    const bundle = h100Bundle;
    const lines = readFileSync(bundle, "utf8").split("\n");
    const command = lines.findIndex((line) => line.startsWith("# $ nvidia-smi --query-gpu="));
    const fixture = join(dir, "h100.csv");
    writeFileSync(fixture, `${lines.slice(command + 2, command + 4).join("\n")}\n`);
    const reading = await standIn({ NVIDIA_SMI_FIXTURE: fixture }).read();
    expect(reading.gpus[0]).toMatchObject({ model: "NVIDIA H100 80GB HBM3", memoryTotalBytes: 85_520_809_984 });
  });

  it("fails NOT_FOUND when the binary does not exist", async () => {
    const missing = join(dir, "no-such-nvidia-smi");
    await expectReadError(createNvidiaSmiReader({ binary: missing }).read(), "NOT_FOUND", `at ${missing}`);
  });

  it("fails NOT_FOUND when nvidia-smi is not on PATH", async () => {
    const reader = createNvidiaSmiReader({ env: { PATH: dir } });
    await expectReadError(reader.read(), "NOT_FOUND", '"nvidia-smi" is not on PATH');
  });

  it("fails FAILED with nvidia-smi's words when the driver is not loaded", async () => {
    const reader = standIn({ NVIDIA_SMI_FIXTURE: ownFixture("driver-not-loaded.txt"), NVIDIA_SMI_EXIT: "9" });
    const error = await expectReadError(
      reader.read(),
      "FAILED",
      "nvidia-smi failed (exit 9): NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.",
    );
    expect(error.message).not.toMatch(/\n/);
  });

  it("fails FAILED quoting stderr", async () => {
    const reader = standIn({
      NVIDIA_SMI_STDERR: "Unable to determine the device handle for GPU0000:65:00.0: Unknown Error\n",
      NVIDIA_SMI_EXIT: "15",
    });
    await expectReadError(reader.read(), "FAILED", "(exit 15): Unable to determine the device handle for GPU0000:65:00.0: Unknown Error");
  });

  it("fails FAILED saying so when nvidia-smi exits non-zero silently", async () => {
    await expectReadError(standIn({ NVIDIA_SMI_EXIT: "3" }).read(), "FAILED", "(exit 3) and printed nothing");
  });

  it("fails BAD_OUTPUT when the error text comes with exit 0", async () => {
    const reader = standIn({ NVIDIA_SMI_FIXTURE: ownFixture("driver-not-loaded.txt") });
    await expectReadError(reader.read(), "BAD_OUTPUT", "couldn't communicate with the NVIDIA driver");
  });

  it("fails BAD_OUTPUT on truncated output", async () => {
    const reader = standIn({ NVIDIA_SMI_FIXTURE: ownFixture("rtx3090-x2-truncated.csv") });
    await expectReadError(reader.read(), "BAD_OUTPUT", "truncated");
  });

  it("fails NO_GPUS when nvidia-smi finds none", async () => {
    const noDevices = standIn({ NVIDIA_SMI_FIXTURE: ownFixture("no-devices.txt"), NVIDIA_SMI_EXIT: "6" });
    await expectReadError(noDevices.read(), "NO_GPUS", "No devices were found");
    await expectReadError(standIn({ NVIDIA_SMI_FIXTURE: ownFixture("header-only.csv") }).read(), "NO_GPUS");
  });

  it("fails TIMEOUT within the timeout when nvidia-smi hangs, and kills it", async () => {
    const reader = standIn({ NVIDIA_SMI_HANG: "1" }, { timeoutMs: 300 });
    const started = Date.now();
    await expectReadError(reader.read(), "TIMEOUT", "300 ms");
    expect(Date.now() - started).toBeLessThan(3_000);
    // On a slow machine the stand-in may be killed before it writes its pid; then there is nothing left to check.
    const pidFile = join(dir, "pid");
    const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, "utf8")) : 0;
    if (pid > 0) await waitFor(() => !isRunning(pid), `the hung stand-in (pid ${pid}) to be gone`);
  });

  it("fails TIMEOUT when nvidia-smi prints its answer but never exits", async () => {
    const reader = standIn({ NVIDIA_SMI_FIXTURE: ownFixture("rtx3090-x2.csv"), NVIDIA_SMI_HANG: "1" }, { timeoutMs: 300 });
    await expectReadError(reader.read(), "TIMEOUT");
  });

  it("stops on abort with the signal's reason and kills nvidia-smi", async () => {
    const reader = standIn({ NVIDIA_SMI_HANG: "1" });
    const controller = new AbortController();
    const reading = reader.read(controller.signal);
    const pidFile = join(dir, "pid");
    await waitFor(() => existsSync(pidFile) && readFileSync(pidFile, "utf8") !== "", "the stand-in to start");
    const reason = new Error("worker shutting down");
    controller.abort(reason);
    expect(await rejection(reading)).toBe(reason);
    const pid = Number(readFileSync(pidFile, "utf8"));
    await waitFor(() => !isRunning(pid), `the aborted stand-in (pid ${pid}) to be gone`);
    // An already aborted signal does not even start it.
    await expect(reader.read(AbortSignal.abort(reason))).rejects.toBe(reason);
  });

  it("drops a field an old driver does not know, once, and keeps reading", async () => {
    const reader = standIn({
      NVIDIA_SMI_FIXTURE: ownFixture("gtx1050ti-no-mig-field-nounits.csv"),
      NVIDIA_SMI_INVALID_FIELD: "mig.mode.current",
    });
    const first = await reader.read();
    expect(first.gpus[0]).toMatchObject({ model: "GeForce GTX 1050 Ti", migEnabled: false });
    await reader.read();
    const queries = calls().map((args) => args[0] ?? "");
    expect(queries).toHaveLength(3);
    expect(queries[0]).toContain("mig.mode.current");
    expect(queries[1]).not.toContain("mig.mode.current");
    expect(queries[2]).toBe(queries[1]);
  });

  it("fails FAILED when the driver rejects an identity field", async () => {
    const reader = standIn({ NVIDIA_SMI_FIXTURE: ownFixture("rtx3090-x2.csv"), NVIDIA_SMI_INVALID_FIELD: "uuid" });
    await expectReadError(reader.read(), "FAILED", '(exit 2): Field "uuid" is not a valid field to query.');
  });

  it("refuses invalid options at creation", () => {
    expect(() => createNvidiaSmiReader({ timeoutMs: 0 })).toThrow(RangeError);
    expect(() => createNvidiaSmiReader({ timeoutMs: Number.NaN })).toThrow(/timeoutMs/);
    expect(() => createNvidiaSmiReader({ binary: "" })).toThrow(/binary/);
  });
});
