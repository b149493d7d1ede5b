// Runs an app as a local process (no container): for providers without Docker, for development,
// and for the demo app. The process gets its own process group so that stopping it also stops
// anything it started (model servers love to fork helpers).
import { spawn, type ChildProcess } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import type { AppInstance, InstanceExit } from "./app-instance.js";
import { AppStartError } from "./errors.js";
import { pickFreePort } from "./free-port.js";
import { createOutputTail } from "./output-tail.js";
import { clientWhenReady } from "./wait-for-ready.js";

export const DEFAULT_READY_TIMEOUT_MS = 120_000;
export const DEFAULT_HEALTH_POLL_INTERVAL_MS = 50;
export const DEFAULT_STOP_GRACE_MS = 5_000;
export const DEFAULT_OUTPUT_TAIL_BYTES = 64 * 1024;

export interface ProcessRuntimeOptions {
  /** Program and arguments, run directly (no shell), e.g. `[process.execPath, "--import", "tsx", "app.ts"]`. */
  readonly command: readonly string[];
  /** Working directory (default: the worker's). */
  readonly cwd?: string;
  /**
   * Environment the app starts from. Nothing is inherited unless given here: pass the worker's
   * environment explicitly (or a filtered copy) so no secret leaks into apps by accident.
   */
  readonly baseEnv?: Readonly<Record<string, string | undefined>>;
  /** The app's own environment, on top of `baseEnv`. */
  readonly env?: Readonly<Record<string, string>>;
  /** GPU indices the app may use; become `CUDA_VISIBLE_DEVICES` (empty: no GPU). */
  readonly gpuIndices?: readonly number[];
  /** Address the app listens on and we connect to (default `127.0.0.1`). */
  readonly host?: string;
  /** Port for the app (`PORT`); default: a free one. */
  readonly port?: number;
  /** Longest wait for READY, ms (default {@link DEFAULT_READY_TIMEOUT_MS}). */
  readonly readyTimeoutMs?: number;
  /** Pause between health-checks while starting, ms (default {@link DEFAULT_HEALTH_POLL_INTERVAL_MS}); bounds the cold-start measurement error. */
  readonly healthPollIntervalMs?: number;
  /** Time between SIGTERM and SIGKILL on stop, ms (default {@link DEFAULT_STOP_GRACE_MS}). */
  readonly stopGraceMs?: number;
  /** How much of the app's output to keep for error messages, bytes (default {@link DEFAULT_OUTPUT_TAIL_BYTES}). */
  readonly outputTailBytes?: number;
  /** Sees every chunk the app prints (e.g. to forward to the worker's logger). */
  readonly onOutput?: (chunk: string, stream: "stdout" | "stderr") => void;
  /** Aborting stops the start: the process is killed and the signal's reason thrown. */
  readonly signal?: AbortSignal;
}

/** An app instance running as a local process group. */
export interface ProcessInstance extends AppInstance {
  readonly kind: "process";
  /** Pid of the app, which is also its process group id. */
  readonly pid: number;
  readonly port: number;
}

// Process groups still alive, so that a worker exiting without stopping its apps (a crash, a
// forgotten stop) does not leave them holding GPUs. Detached children outlive their parent otherwise.
const liveGroups = new Set<number>();
let exitHookInstalled = false;
function trackGroup(pid: number): void {
  liveGroups.add(pid);
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once("exit", () => {
    for (const pgid of liveGroups) killGroup(pgid, "SIGKILL");
  });
}

function killGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch (err) {
    // ESRCH: the group is gone already, which is what we want.
    if ((err as NodeJS.ErrnoException).code !== "ESRCH") throw err;
  }
}

/** True while any process of the group exists (zombies included). */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Starts the app and waits until its health-check says READY. The time that took is the
 * instance's `coldStartMs`. On any failure the process group is killed before the error is thrown:
 * {@link AppStartError} `spawn_failed` (command not found…), `exited`, `setup_failed` or `ready_timeout`.
 */
export async function startProcessInstance(options: ProcessRuntimeOptions): Promise<ProcessInstance> {
  const [file, ...args] = options.command;
  if (!file) throw new TypeError("process runtime: command must name a program");
  options.signal?.throwIfAborted();
  const host = options.host ?? "127.0.0.1";
  const port = options.port ?? (await pickFreePort(host));
  const stopGraceMs = options.stopGraceMs ?? DEFAULT_STOP_GRACE_MS;
  const tail = createOutputTail(options.outputTailBytes ?? DEFAULT_OUTPUT_TAIL_BYTES);

  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(options.baseEnv ?? {})) if (v !== undefined) env[k] = v;
  Object.assign(env, options.env);
  // Platform-owned variables come last: an app's env must not move it to another port or GPU.
  env.PORT = String(port);
  env.CUDA_VISIBLE_DEVICES = (options.gpuIndices ?? []).join(",");

  const startedAt = performance.now();
  let child: ChildProcess;
  try {
    child = spawn(file, args, { cwd: options.cwd, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  } catch (err) {
    throw new AppStartError("spawn_failed", `could not start ${file}: ${(err as Error).message}`, { cause: err });
  }
  // spawn reports a missing program asynchronously, as an 'error' event instead of 'spawn'.
  const spawned = await new Promise<{ ok: true } | { ok: false; err: Error }>((resolve) => {
    child.once("spawn", () => resolve({ ok: true }));
    child.once("error", (err) => resolve({ ok: false, err }));
  });
  if (!spawned.ok || child.pid === undefined) {
    const err = spawned.ok ? new Error("no pid") : spawned.err;
    throw new AppStartError("spawn_failed", `could not start ${file}: ${err.message}`, { cause: err });
  }
  const pid = child.pid;
  trackGroup(pid);

  for (const stream of ["stdout", "stderr"] as const) {
    const readable = child[stream];
    readable?.setEncoding("utf8");
    readable?.on("data", (chunk: string) => {
      tail.append(chunk);
      options.onOutput?.(chunk, stream);
    });
  }

  let stopRequested = false;
  let leaderExited = false;
  // 'exit', not 'close': a grandchild holding the pipes open would delay 'close' indefinitely.
  const exited = new Promise<InstanceExit>((resolve) => {
    child.once("exit", (code, signal) => {
      leaderExited = true;
      resolve({ code, signal, stopped: stopRequested, outputTail: tail.text() });
    });
  });
  // An app that dies on its own may leave helpers behind (holding GPU memory): sweep its group.
  void exited.then(() => {
    if (!stopRequested) void stop();
  });

  let stopping: Promise<InstanceExit> | undefined;
  const stop = (): Promise<InstanceExit> => {
    stopping ??= (async () => {
      stopRequested = true;
      killGroup(pid, "SIGTERM");
      const deadline = performance.now() + stopGraceMs;
      // Wait for the app and everything it started to leave on their own, up to the grace period.
      while (performance.now() < deadline && (!leaderExited || groupAlive(pid))) {
        await Promise.race([exited, sleep(Math.min(50, Math.max(1, deadline - performance.now())))]);
      }
      // Then sweep: the leader may be gone while children that ignored SIGTERM live on.
      killGroup(pid, "SIGKILL");
      const exit = await exited;
      liveGroups.delete(pid);
      child.stdout?.destroy();
      child.stderr?.destroy();
      return exit;
    })();
    return stopping;
  };

  const { baseUrl, client } = await clientWhenReady({
    host,
    port,
    readyTimeoutMs: options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS,
    healthPollIntervalMs: options.healthPollIntervalMs ?? DEFAULT_HEALTH_POLL_INTERVAL_MS,
    exited,
    outputTail: () => tail.text(),
    signal: options.signal,
    stop,
  });
  const coldStartMs = Math.round(performance.now() - startedAt);

  return {
    kind: "process",
    pid,
    port,
    baseUrl,
    webhookHost: host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host,
    coldStartMs,
    client,
    exited,
    outputTail: () => tail.text(),
    stop,
  };
}
