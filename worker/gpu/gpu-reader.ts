// The worker's view of its GPUs: what a reader returns and how it fails.
// Both the nvidia-smi reader and the simulated one implement GpuReader, so the
// rest of the worker depends on this file only.

/**
 * A GPU's identity and capacity, as declared when the worker joins.
 * Maps onto the `ngpu.v1.Gpu` message.
 */
export interface GpuInfo {
  /** Index as nvidia-smi numbers it on the node (what CUDA_VISIBLE_DEVICES uses). */
  readonly index: number;
  /** Immutable GPU UUID ("GPU-…"). */
  readonly uuid: string;
  /** Product name as the driver reports it, e.g. "NVIDIA GeForce RTX 3090". */
  readonly model: string;
  /** Installed memory in bytes (nvidia-smi reports MiB; converted ×1048576). */
  readonly memoryTotalBytes: number;
  /** Driver version, e.g. "590.48.01"; absent when the driver did not report it. */
  readonly driverVersion?: string;
  /** "domain:bus:device.function" in hex, e.g. "00000000:0C:00.0"; absent when not reported. */
  readonly pciBusId?: string;
  /** True when MIG mode is currently enabled (whole-GPU utilization is then not reported). */
  readonly migEnabled: boolean;
  /** True for a GPU made up by `--simulate-gpu`. */
  readonly simulated: boolean;
}

/**
 * One reading of one GPU. Every optional field is absent when the driver did
 * not report it (`[N/A]`, `[Not Supported]`, an error token): absent, never zero.
 * Maps onto the `ngpu.v1.GpuTelemetry` message.
 */
export interface GpuSample {
  readonly index: number;
  readonly uuid: string;
  /** When the reading was taken, in milliseconds since the Unix epoch. */
  readonly timeMs: number;
  /** Percent of the sample period in which a kernel ran (0–100). Absent under MIG. */
  readonly utilizationPercent?: number;
  /** Percent of the sample period in which memory was read or written (0–100). Absent under MIG. */
  readonly memoryUtilizationPercent?: number;
  /** Memory allocated by active contexts, in bytes. */
  readonly memoryUsedBytes?: number;
  /** Installed memory, in bytes. */
  readonly memoryTotalBytes?: number;
  /** Core temperature in °C. */
  readonly temperatureCelsius?: number;
  /** Board power draw in watts. */
  readonly powerDrawWatts?: number;
  /** Software power limit in watts. */
  readonly powerLimitWatts?: number;
  /** Current SM clock in MHz. */
  readonly smClockMhz?: number;
  /** Current memory clock in MHz. */
  readonly memoryClockMhz?: number;
  /** Corrected ECC errors since the driver loaded (volatile total). */
  readonly eccCorrectedErrors?: number;
  /** Uncorrected ECC errors since the driver loaded (volatile total). */
  readonly eccUncorrectedErrors?: number;
  /** Intended fan speed as a percent of maximum (may exceed 100). */
  readonly fanSpeedPercent?: number;
  /** Performance state, "P0" (maximum) to "P12" (minimum). */
  readonly pstate?: string;
}

/** Inventory and telemetry from one read, one entry per GPU in both lists, same order. */
export interface GpuReading {
  readonly gpus: readonly GpuInfo[];
  readonly samples: readonly GpuSample[];
}

/** Reads the node's GPUs. Implemented by the nvidia-smi reader and the simulated one. */
export interface GpuReader {
  /**
   * Takes one reading of every GPU.
   * @param signal aborts the read (the child process, if any, is killed); the promise
   *   then rejects with the signal's reason.
   * @throws GpuReadError for every failure other than an abort.
   */
  read(signal?: AbortSignal): Promise<GpuReading>;
}

/**
 * Why a read failed:
 * - `NOT_FOUND`: the nvidia-smi binary does not exist (no driver installed, wrong path).
 * - `FAILED`: nvidia-smi ran and exited non-zero (driver not loaded, GPU lost, …).
 * - `BAD_OUTPUT`: nvidia-smi exited 0 but printed something other than the expected CSV.
 * - `TIMEOUT`: nvidia-smi did not finish in time and was killed.
 * - `NO_GPUS`: nvidia-smi works but reports no GPU.
 */
export type GpuReadErrorCode = "NOT_FOUND" | "FAILED" | "BAD_OUTPUT" | "TIMEOUT" | "NO_GPUS";

/** The one error a GpuReader throws; `message` includes what nvidia-smi printed, trimmed. */
export class GpuReadError extends Error {
  override readonly name = "GpuReadError";
  readonly code: GpuReadErrorCode;

  constructor(code: GpuReadErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}
