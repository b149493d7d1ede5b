// Runs an app as a Docker container: the normal way for Cog images, which serve on port 5000.
// The container port is published on the worker's loopback only; the app reaches the worker's
// webhook receiver through `host.docker.internal`.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { AppInstance, InstanceExit } from "./app-instance.js";
import { AppStartError } from "./errors.js";
import { pickFreePort } from "./free-port.js";
import { createOutputTail } from "./output-tail.js";
import { DEFAULT_HEALTH_POLL_INTERVAL_MS, DEFAULT_OUTPUT_TAIL_BYTES, DEFAULT_READY_TIMEOUT_MS, DEFAULT_STOP_GRACE_MS } from "./process-runtime.js";
import { clientWhenReady } from "./wait-for-ready.js";

/** Port Cog's HTTP server listens on inside its images. */
export const COG_CONTAINER_PORT = 5000;
/** Host name containers use to reach the worker (mapped with `--add-host …:host-gateway`). */
export const DOCKER_HOST_ALIAS = "host.docker.internal";

export interface DockerRuntimeOptions {
  /** Image reference, e.g. `r8.im/owner/model@sha256:…`. */
  readonly image: string;
  /** Host GPU indices to give the container (`--gpus "device=…"`); empty: none. */
  readonly gpuIndices?: readonly number[];
  /** The app's environment (`-e KEY=VALUE`). */
  readonly env?: Readonly<Record<string, string>>;
  /** Port the app listens on inside the container (default {@link COG_CONTAINER_PORT}). */
  readonly containerPort?: number;
  /** Host port to publish on (default: a free one). */
  readonly hostPort?: number;
  /** Host address to publish on (default `127.0.0.1`: the app is not exposed beyond this machine). */
  readonly host?: string;
  /** Container name (default `ngpu-<random>`); also how stop finds it. */
  readonly name?: string;
  /** Docker CLI program (default `docker`). */
  readonly docker?: string;
  /**
   * Environment for the docker CLI itself (PATH, DOCKER_HOST, HOME for registry credentials).
   * Default: the worker's own, inherited by the child process. Apps never see it: their
   * environment is `env` only.
   */
  readonly dockerEnv?: Readonly<Record<string, string | undefined>>;
  /** Extra `docker run` flags, placed before the image (e.g. `--shm-size=8g`). */
  readonly extraArgs?: readonly string[];
  /** Command and arguments after the image (default: the image's own). */
  readonly command?: readonly string[];
  /** Longest wait for READY, ms (default 120 000). Image pulls happen before this starts. */
  readonly readyTimeoutMs?: number;
  /** Pause between health-checks while starting, ms (default 50). */
  readonly healthPollIntervalMs?: number;
  /** Seconds `docker stop` waits before SIGKILL, given in ms (default 5 000). */
  readonly stopGraceMs?: number;
  /** How much container output to keep, bytes (default 64 KiB). */
  readonly outputTailBytes?: number;
  readonly onOutput?: (chunk: string, stream: "stdout" | "stderr") => void;
  /** Aborting stops the start: the container is removed and the signal's reason thrown. */
  readonly signal?: AbortSignal;
}

/** An app instance running as a container. */
export interface DockerInstance extends AppInstance {
  readonly kind: "docker";
  readonly containerName: string;
  readonly hostPort: number;
}

/** What {@link buildDockerRunArgs} needs: the options with name and host port decided. */
export type DockerRunSpec = Pick<DockerRuntimeOptions, "image" | "gpuIndices" | "env" | "containerPort" | "host" | "extraArgs" | "command"> & {
  readonly name: string;
  readonly hostPort: number;
};

/**
 * The `docker run` argv (without the program). Pure, so it can be checked without a Docker engine.
 *
 * `CUDA_VISIBLE_DEVICES` is deliberately not set: `--gpus` makes exactly the chosen GPUs visible,
 * renumbered from 0 inside the container, so host indices there would point at missing devices.
 */
export function buildDockerRunArgs(spec: DockerRunSpec): string[] {
  const containerPort = spec.containerPort ?? COG_CONTAINER_PORT;
  const args = ["run", "--rm", "-d", "--name", spec.name, "--label", "ngpu.app-instance=1"];
  const gpus = spec.gpuIndices ?? [];
  // The quotes are part of the value: docker reads --gpus as CSV, and "device=0,1" is one field.
  if (gpus.length > 0) args.push("--gpus", `"device=${gpus.join(",")}"`);
  args.push("-p", `${spec.host ?? "127.0.0.1"}:${spec.hostPort}:${containerPort}`);
  args.push("--add-host", `${DOCKER_HOST_ALIAS}:host-gateway`);
  // PORT for apps that read it (Cog's server does); the platform's value wins over the app's.
  const env: Record<string, string> = { ...spec.env, PORT: String(containerPort) };
  for (const [key, value] of Object.entries(env)) args.push("-e", `${key}=${value}`);
  args.push(...(spec.extraArgs ?? []), spec.image, ...(spec.command ?? []));
  return args;
}

interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly error?: Error;
}

function runCli(docker: string, args: readonly string[], env: Record<string, string> | undefined, timeoutMs: number): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(docker, args, { ...(env ? { env } : {}), timeout: timeoutMs, maxBuffer: 4 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error ? (typeof (error as { code?: unknown }).code === "number" ? ((error as { code: number }).code) : null) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr), ...(error ? { error } : {}) });
    });
  });
}

/** undefined lets child_process inherit the worker's environment, which the docker CLI needs. */
function cliEnv(dockerEnv: DockerRuntimeOptions["dockerEnv"]): Record<string, string> | undefined {
  if (dockerEnv === undefined) return undefined;
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(dockerEnv)) if (v !== undefined) env[k] = v;
  return env;
}

/**
 * True when a Docker engine answers `docker info` within `timeoutMs` (default 3 000 ms). False when
 * the CLI is missing, the daemon is down, or it is too slow.
 */
export async function dockerAvailable(
  options: {
    /** Docker CLI program (default `docker`). */
    docker?: string;
    timeoutMs?: number;
    /** Environment for the CLI (default: inherited). */
    env?: Readonly<Record<string, string | undefined>>;
  } = {},
): Promise<boolean> {
  const result = await runCli(options.docker ?? "docker", ["info", "--format", "{{.ServerVersion}}"], cliEnv(options.env), options.timeoutMs ?? 3_000);
  return result.code === 0 && result.stdout.trim() !== "";
}

/**
 * Starts the container and waits until its health-check says READY (`coldStartMs` counts from
 * `docker run`, so it includes container start but not an image pull done beforehand).
 * Throws {@link AppStartError} like the process runtime; the container is removed first.
 */
export async function startDockerInstance(options: DockerRuntimeOptions): Promise<DockerInstance> {
  options.signal?.throwIfAborted();
  const docker = options.docker ?? "docker";
  const env = cliEnv(options.dockerEnv);
  const host = options.host ?? "127.0.0.1";
  const hostPort = options.hostPort ?? (await pickFreePort(host));
  const name = options.name ?? `ngpu-${randomBytes(6).toString("hex")}`;
  const stopGraceMs = options.stopGraceMs ?? DEFAULT_STOP_GRACE_MS;
  const tail = createOutputTail(options.outputTailBytes ?? DEFAULT_OUTPUT_TAIL_BYTES);

  const startedAt = performance.now();
  // `docker run -d` returns once the container started; an image pull would happen inside it, so
  // its timeout is generous: pulls are the caller's to do beforehand if cold start matters.
  const run = await runCli(docker, buildDockerRunArgs({ ...options, name, hostPort }), env, 10 * 60_000);
  if (run.code !== 0) {
    throw new AppStartError("spawn_failed", `docker run ${options.image} failed: ${(run.stderr || run.error?.message || "").trim()}`, { outputTail: run.stderr });
  }

  let stopRequested = false;
  // `docker wait` prints the exit code when the container ends; with --rm it may already be gone,
  // in which case the code is unknown.
  const waiter: ChildProcess = spawn(docker, ["wait", name], { ...(env ? { env } : {}), stdio: ["ignore", "pipe", "ignore"] });
  const exited = new Promise<InstanceExit>((resolve) => {
    let out = "";
    waiter.stdout?.setEncoding("utf8");
    waiter.stdout?.on("data", (c: string) => (out += c));
    const done = () => {
      const code = Number.parseInt(out.trim(), 10);
      resolve({ code: Number.isNaN(code) ? null : code, signal: null, stopped: stopRequested, outputTail: tail.text() });
    };
    waiter.once("exit", done);
    waiter.once("error", done);
  });
  const logs: ChildProcess = spawn(docker, ["logs", "--follow", name], { ...(env ? { env } : {}), stdio: ["ignore", "pipe", "pipe"] });
  logs.on("error", () => {});
  for (const stream of ["stdout", "stderr"] as const) {
    logs[stream]?.setEncoding("utf8");
    logs[stream]?.on("data", (chunk: string) => {
      tail.append(chunk);
      options.onOutput?.(chunk, stream);
    });
  }

  let stopping: Promise<InstanceExit> | undefined;
  const stop = (): Promise<InstanceExit> => {
    stopping ??= (async () => {
      stopRequested = true;
      await runCli(docker, ["stop", "--time", String(Math.ceil(stopGraceMs / 1000)), name], env, stopGraceMs + 10_000);
      // --rm usually removed it already; rm -f covers a container stuck in stopping or created without --rm.
      await runCli(docker, ["rm", "-f", name], env, 10_000);
      const exit = await Promise.race([exited, sleep(5_000, undefined)]);
      waiter.kill();
      logs.kill();
      return exit ?? { code: null, signal: null, stopped: true, outputTail: tail.text() };
    })();
    return stopping;
  };

  const { baseUrl, client } = await clientWhenReady({
    host,
    port: hostPort,
    readyTimeoutMs: options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS,
    healthPollIntervalMs: options.healthPollIntervalMs ?? DEFAULT_HEALTH_POLL_INTERVAL_MS,
    exited,
    outputTail: () => tail.text(),
    signal: options.signal,
    stop,
  });

  return {
    kind: "docker",
    containerName: name,
    hostPort,
    baseUrl,
    webhookHost: DOCKER_HOST_ALIAS,
    coldStartMs: Math.round(performance.now() - startedAt),
    client,
    exited,
    outputTail: () => tail.text(),
    stop,
  };
}
