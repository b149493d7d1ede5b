import { existsSync, readFileSync } from "node:fs";
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
  /** For https:// control planes: a CA to trust (PEM) instead of the system's, and a pinned certificate. */
  readonly tls?: WorkerTls;
}

export interface WorkerTls {
  /** PEM of the CA(s) to trust; default: the system's. */
  readonly ca?: Buffer;
  /** SHA-256 fingerprint the control plane's certificate must have ("AB:CD:…", upper case). */
  readonly pinSha256?: string;
}

const LOOPBACK = new Set(["localhost", "127.0.0.1", "[::1]", "::1"]);

/** A fingerprint as "AB:CD:…" (what Node reports), from hex with or without colons, or "sha256/…". */
export function normalizeFingerprint(text: string): string | undefined {
  const hex = text.replace(/^sha256[/:]/i, "").replace(/:/g, "").toUpperCase();
  if (!/^[0-9A-F]{64}$/.test(hex)) return undefined;
  return hex.match(/../g)!.join(":");
}

export class WorkerConfigError extends Error {
  override readonly name = "WorkerConfigError";
}

export const WORKER_USAGE = `Usage: ngpu-worker --control-plane URL [--token TOKEN] [options]

Joins an NGPU network as a GPU provider and runs the tasks it is given.

Options:
  --control-plane URL       control plane address (env NGPU_CONTROL_PLANE), e.g. http://10.0.0.5:7700
  --token TOKEN             enrollment token from the operator (env NGPU_ENROLLMENT_TOKEN);
                            not needed once the data dir holds the node's identity
  --name NAME               name shown to operators (default: host name)
  --data-dir DIR            where the node id is kept (env NGPU_WORKER_DATA_DIR, default ~/.ngpu-worker)
  --simulate-gpu SPEC       run a simulated GPU instead of reading nvidia-smi; SPEC is MODEL:MEMORY[:COUNT],
                            e.g. "NVIDIA GeForce RTX 3090:24GiB" (repeatable)
  --ca-file PATH            CA certificate (PEM) to trust for an https:// control plane (env NGPU_TLS_CA)
  --tls-pin SHA256          accept only this certificate (SHA-256 fingerprint, hex) (env NGPU_TLS_PIN)
  --allow-plaintext         allow http:// to a non-loopback control plane (trusted networks only)
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
        "ca-file": { type: "string" },
        "tls-pin": { type: "string" },
        "allow-plaintext": { type: "boolean" },
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
  let parsedUrl: URL;
  try {
    parsedUrl = new URL(url);
    if (parsedUrl.protocol !== "http:" && parsedUrl.protocol !== "https:") throw new Error("not http");
  } catch {
    throw new WorkerConfigError(`--control-plane must be an http:// or https:// URL, got ${JSON.stringify(url)}`);
  }
  // Enrollment tokens and task data must not cross a network in the clear.
  if (parsedUrl.protocol === "http:" && !LOOPBACK.has(parsedUrl.hostname) && !v["allow-plaintext"]) {
    throw new WorkerConfigError("--control-plane: plaintext http:// is only for loopback; use https:// (or --allow-plaintext on a network you trust)");
  }
  const caFile = v["ca-file"] ?? env.NGPU_TLS_CA ?? "";
  let ca: Buffer | undefined;
  if (caFile !== "") {
    try {
      ca = readFileSync(caFile);
    } catch (err) {
      throw new WorkerConfigError(`--ca-file: cannot read ${JSON.stringify(caFile)}: ${(err as Error).message}`);
    }
  }
  const pinText = v["tls-pin"] ?? env.NGPU_TLS_PIN ?? "";
  const pinSha256 = pinText === "" ? undefined : normalizeFingerprint(pinText);
  if (pinText !== "" && !pinSha256) throw new WorkerConfigError("--tls-pin: must be a SHA-256 fingerprint (64 hex digits, colons allowed)");
  if ((ca || pinSha256) && parsedUrl.protocol !== "https:") throw new WorkerConfigError("--ca-file and --tls-pin need an https:// control plane");
  const token = v.token ?? env.NGPU_ENROLLMENT_TOKEN ?? "";
  const dataDir = v["data-dir"] ?? env.NGPU_WORKER_DATA_DIR ?? join(homedir(), ".ngpu-worker");
  // A node that has joined before proves itself with its key; only a first join needs a token.
  const hasIdentity = existsSync(join(dataDir, "node.json")) && existsSync(join(dataDir, "node-key.pem"));
  if (!token && !hasIdentity) {
    throw new WorkerConfigError(`--token is required for a first join (or set NGPU_ENROLLMENT_TOKEN): ask the network's operator for an enrollment token; ${dataDir} holds no node identity yet`);
  }
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
    dataDir,
    simulateGpus,
    nvidiaSmiPath: v["nvidia-smi"] ?? "nvidia-smi",
    maxConcurrentTasks,
    logLevel,
    ...(ca || pinSha256 ? { tls: { ...(ca ? { ca } : {}), ...(pinSha256 ? { pinSha256 } : {}) } } : {}),
  };
}
