import { homedir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { parseSimulatedGpuSpec, type SimulatedGpuSpec } from "./gpu/simulated-gpu.js";

/** The worker's settings, from flags first, then environment. */
export interface WorkerConfig {
  /** Control plane URL. */
  readonly controlPlaneUrl: string;
  readonly enrollmentToken: string;
  readonly name: string;
  /** Keeps the node id (and later its key) between runs. */
  readonly dataDir: string;
  /** Simulated GPUs instead of nvidia-smi. */
  readonly simulateGpus: readonly SimulatedGpuSpec[];
  readonly nvidiaSmiPath: string;
  readonly maxConcurrentTasks: number;
  readonly logLevel: string;
}

export class WorkerConfigError extends Error {
  override readonly name = "WorkerConfigError";
}

export const WORKER_USAGE = `Usage: ngpu-worker --control-plane URL --token TOKEN [options]

Joins an NGPU network as a GPU provider and runs the tasks it is given.

Options:
  --control-plane URL       control plane address (env NGPU_CONTROL_PLANE), e.g. http://10.0.0.5:7700
  --token TOKEN             enrollment token from the operator (env NGPU_ENROLLMENT_TOKEN)
  --name NAME               name shown to operators (default: host name)
  --data-dir DIR            where the node id is kept (env NGPU_WORKER_DATA_DIR, default ~/.ngpu-worker)
  --simulate-gpu SPEC       run a simulated GPU instead of reading nvidia-smi; SPEC is MODEL:MEMORY[:COUNT],
                            e.g. "NVIDIA GeForce RTX 3090:24GiB" (repeatable)
  --nvidia-smi PATH         nvidia-smi to run (default: the one on PATH)
  --max-concurrent-tasks N  tasks at once at most (default: number of GPUs, at least 1)
  --log-level LEVEL         trace, debug, info, warn, error (default info)
  --version                 print the version
  --help                    print this help
`;

type Env = Readonly<Record<string, string | undefined>>;

export function parseWorkerArgs(argv: readonly string[], env: Env, hostname: string): WorkerConfig | "help" | "version" {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      options: {
        "control-plane": { type: "string" },
        token: { type: "string" },
        name: { type: "string" },
        "data-dir": { type: "string" },
        "simulate-gpu": { type: "string", multiple: true },
        "nvidia-smi": { type: "string" },
        "max-concurrent-tasks": { type: "string" },
        "log-level": { type: "string" },
        help: { type: "boolean" },
        version: { type: "boolean" },
      },
      strict: true,
      allowPositionals: false,
    });
  } catch (err) {
    throw new WorkerConfigError((err as Error).message);
  }
  const v = parsed.values;
  if (v.help) return "help";
  if (v.version) return "version";
  const url = v["control-plane"] ?? env.NGPU_CONTROL_PLANE ?? "";
  if (!url) throw new WorkerConfigError("--control-plane is required (or set NGPU_CONTROL_PLANE)");
  try {
    const u = new URL(url);
    if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error("not http");
  } catch {
    throw new WorkerConfigError(`--control-plane must be an http:// or https:// URL, got ${JSON.stringify(url)}`);
  }
  const token = v.token ?? env.NGPU_ENROLLMENT_TOKEN ?? "";
  if (!token) throw new WorkerConfigError("--token is required (or set NGPU_ENROLLMENT_TOKEN): ask the network's operator for an enrollment token");
  const simulateGpus = (v["simulate-gpu"] ?? []).map((spec) => {
    try {
      return parseSimulatedGpuSpec(spec);
    } catch (err) {
      throw new WorkerConfigError(`--simulate-gpu ${JSON.stringify(spec)}: ${(err as Error).message}`);
    }
  });
  let maxConcurrentTasks = 0;
  if (v["max-concurrent-tasks"] !== undefined) {
    maxConcurrentTasks = Number(v["max-concurrent-tasks"]);
    if (!Number.isInteger(maxConcurrentTasks) || maxConcurrentTasks < 1 || maxConcurrentTasks > 1024) {
      throw new WorkerConfigError("--max-concurrent-tasks must be an integer from 1 to 1024");
    }
  }
  const logLevel = v["log-level"] ?? env.NGPU_LOG_LEVEL ?? "info";
  if (!["trace", "debug", "info", "warn", "error", "fatal", "silent"].includes(logLevel)) throw new WorkerConfigError(`--log-level: unknown level ${JSON.stringify(logLevel)}`);
  return {
    controlPlaneUrl: url.replace(/\/+$/, ""),
    enrollmentToken: token,
    name: v.name ?? hostname,
    dataDir: v["data-dir"] ?? env.NGPU_WORKER_DATA_DIR ?? join(homedir(), ".ngpu-worker"),
    simulateGpus,
    nvidiaSmiPath: v["nvidia-smi"] ?? "nvidia-smi",
    maxConcurrentTasks,
    logLevel,
  };
}
