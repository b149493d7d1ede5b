// Reads the node's GPUs by running nvidia-smi once per reading: one
// `--query-gpu` call gives both inventory and telemetry. The process is run
// with execFile (no shell) and killed when it overstays its timeout: a wedged
// driver makes nvidia-smi hang, and a reading that never comes must not stall
// the worker.

import { execFile } from "node:child_process";

import { GpuReadError, type GpuReader, type GpuReading } from "./gpu-reader.js";
import { GPU_QUERY_FIELDS, REQUIRED_GPU_QUERY_FIELDS, parseGpuQueryCsv, quoteOutput } from "./parse-query-csv.js";

/** The binary run when none is given; looked up on PATH. */
export const DEFAULT_NVIDIA_SMI_BINARY = "nvidia-smi";
/** How long nvidia-smi may run before it is killed, in milliseconds. */
export const DEFAULT_NVIDIA_SMI_TIMEOUT_MS = 5_000;
/** Output larger than this (bytes, stdout or stderr) is not a query answer; the run fails BAD_OUTPUT. */
const MAX_OUTPUT_BYTES = 1_048_576;

/** Options of createNvidiaSmiReader. */
export interface NvidiaSmiReaderOptions {
  /** Path of nvidia-smi, or a bare name looked up on PATH. Default "nvidia-smi". */
  readonly binary?: string;
  /** Kill nvidia-smi and fail with TIMEOUT after this many milliseconds. Default 5000. */
  readonly timeoutMs?: number;
  /** Environment of the nvidia-smi process. Default: this process's environment. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Clock for sample times, in milliseconds since the Unix epoch. Default Date.now. */
  readonly now?: () => number;
}

/** What one nvidia-smi run ended with, when it ran to the end. */
interface RunResult {
  /** Exit status; null when a signal ended the process. */
  readonly exitCode: number | null;
  readonly exitSignal: string | null;
  readonly stdout: string;
  readonly stderr: string;
}

// nvidia-smi's answer when a driver does not know a field (exit 2), e.g.
// `Field "mig.mode.current" is not a valid field to query.`; Windows builds
// have been seen printing curly quotes.
const INVALID_FIELD = /Field ["“]([^"”]+)["”] is not a valid field to query/;
const NO_DEVICES = /No devices were found/i;

/**
 * Creates a GpuReader that runs `nvidia-smi --query-gpu=<GPU_QUERY_FIELDS> --format=csv,nounits`
 * on every read. A field the installed driver does not know (older drivers lack
 * e.g. `mig.mode.current`) is dropped from the query for the reader's lifetime
 * and reads as absent; the identity fields are never dropped.
 *
 * Failures are GpuReadError: NOT_FOUND (no binary), FAILED (non-zero exit; the
 * message quotes nvidia-smi), TIMEOUT (killed after timeoutMs), BAD_OUTPUT (exit 0
 * but not the expected CSV), NO_GPUS (nvidia-smi reports no GPU).
 *
 * @throws RangeError when an option is invalid.
 */
export function createNvidiaSmiReader(options: NvidiaSmiReaderOptions = {}): GpuReader {
  const binary = options.binary ?? DEFAULT_NVIDIA_SMI_BINARY;
  const timeoutMs = options.timeoutMs ?? DEFAULT_NVIDIA_SMI_TIMEOUT_MS;
  const now = options.now ?? Date.now;
  if (binary === "") throw new RangeError("nvidia-smi reader: binary must not be empty");
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    throw new RangeError(`nvidia-smi reader: timeoutMs must be a positive number of milliseconds, got ${timeoutMs}`);
  }

  let fields = [...GPU_QUERY_FIELDS];

  async function read(signal?: AbortSignal): Promise<GpuReading> {
    // Each pass either returns, throws, or drops one field, so this ends.
    for (;;) {
      const args = [`--query-gpu=${fields.join(",")}`, "--format=csv,nounits"];
      const result = await run(binary, args, { timeoutMs, env: options.env, signal });
      const output = [result.stderr, result.stdout].filter((text) => text.trim() !== "").join("\n");

      if (NO_DEVICES.test(output)) {
        throw new GpuReadError("NO_GPUS", `nvidia-smi found no GPU: ${quoteOutput(output)}`);
      }
      if (result.exitCode !== 0) {
        const invalid = INVALID_FIELD.exec(output)?.[1];
        if (invalid !== undefined && fields.includes(invalid) && !REQUIRED_GPU_QUERY_FIELDS.includes(invalid)) {
          fields = fields.filter((field) => field !== invalid);
          continue;
        }
        const how = result.exitCode === null ? `killed by ${result.exitSignal ?? "a signal"}` : `exit ${result.exitCode}`;
        const said = output.trim() === "" ? " and printed nothing" : `: ${quoteOutput(output)}`;
        throw new GpuReadError("FAILED", `nvidia-smi failed (${how})${said}`);
      }

      const reading = parseGpuQueryCsv(result.stdout, now());
      if (reading.gpus.length === 0) {
        throw new GpuReadError("NO_GPUS", "nvidia-smi found no GPU: it printed a CSV header and no rows");
      }
      return reading;
    }
  }

  return { read };
}

interface RunOptions {
  readonly timeoutMs: number;
  readonly env: Readonly<Record<string, string | undefined>> | undefined;
  readonly signal: AbortSignal | undefined;
}

/**
 * Runs the binary to completion. Rejects with GpuReadError for NOT_FOUND,
 * TIMEOUT and oversized output, and with the signal's reason on abort; an exit
 * status, zero or not, resolves.
 */
function run(binary: string, args: readonly string[], options: RunOptions): Promise<RunResult> {
  const { timeoutMs, env, signal } = options;
  if (signal?.aborted) return Promise.reject(signal.reason);

  return new Promise<RunResult>((resolve, reject) => {
    let settled = false;
    const child = execFile(
      binary,
      args,
      { encoding: "utf8", maxBuffer: MAX_OUTPUT_BYTES, windowsHide: true, ...(env !== undefined && { env }) },
      (error, stdout, stderr) => {
        if (settled) return;
        finish();
        if (error === null) {
          resolve({ exitCode: 0, exitSignal: null, stdout, stderr });
          return;
        }
        // execFile's error carries a string code when spawning or reading failed,
        // and the exit status as a number when the process ran and exited non-zero.
        const { code } = error;
        if (code === "ENOENT") {
          const where = binary.includes("/") || binary.includes("\\") ? `at ${binary}` : `("${binary}" is not on PATH)`;
          reject(new GpuReadError("NOT_FOUND", `nvidia-smi not found ${where}; is the NVIDIA driver installed?`, { cause: error }));
        } else if (code === "ERR_CHILD_PROCESS_STDIO_MAXBUFFER") {
          reject(new GpuReadError("BAD_OUTPUT", `nvidia-smi printed more than ${MAX_OUTPUT_BYTES} bytes`, { cause: error }));
        } else if (typeof code === "string") {
          reject(new GpuReadError("FAILED", `nvidia-smi could not be run (${binary}): ${error.message}`, { cause: error }));
        } else {
          resolve({
            exitCode: typeof code === "number" ? code : null,
            exitSignal: error.signal ?? null,
            stdout,
            stderr,
          });
        }
      },
    );

    // Settles at once, without waiting for the process to exit: a process stuck
    // in the driver may not die even from SIGKILL, and its pipes may stay open.
    const kill = (): void => {
      child.kill("SIGKILL");
      child.stdout?.destroy();
      child.stderr?.destroy();
    };
    const onAbort = (): void => {
      if (settled) return;
      finish();
      kill();
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      if (settled) return;
      finish();
      kill();
      reject(new GpuReadError("TIMEOUT", `nvidia-smi did not finish within ${timeoutMs} ms and was killed (hung driver or GPU?)`));
    }, timeoutMs);
    signal?.addEventListener("abort", onAbort, { once: true });

    function finish(): void {
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    }
  });
}
