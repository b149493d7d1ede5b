// Polls a starting app's health-check until it is READY: the end of its cold start.
import { setTimeout as sleep } from "node:timers/promises";
import type { InstanceExit } from "./app-instance.js";
import { type CogClient, createCogClient } from "./cog-client.js";
import { AppStartError, CogError } from "./errors.js";

export interface WaitForReadyOptions {
  readonly client: CogClient;
  /** Give up after this long, in ms, counted from the call. */
  readonly timeoutMs: number;
  /** Pause between polls, in ms. */
  readonly intervalMs: number;
  /** Settles if the instance ends; waiting stops at once then. */
  readonly exited: Promise<InstanceExit>;
  /** The app's output so far, for error messages. */
  readonly outputTail: () => string;
  readonly signal?: AbortSignal;
}

/** Longest a single health-check may take while the app starts, ms (a busy setup can be slow to answer). */
const POLL_REQUEST_TIMEOUT_MS = 2_000;

/**
 * Resolves when the app says READY (or BUSY: setup is done and someone is already using it).
 * Throws {@link AppStartError} `exited`, `setup_failed` or `ready_timeout`, or the signal's reason.
 * Does not stop the instance; the caller does.
 */
export async function waitForReady(options: WaitForReadyOptions): Promise<void> {
  const { client, signal } = options;
  const deadline = performance.now() + options.timeoutMs;
  let exit: InstanceExit | undefined;
  void options.exited.then((e) => {
    exit = e;
  });
  const stop = new AbortController();
  const exitedOrAborted = AbortSignal.any(signal ? [signal, stop.signal] : [stop.signal]);
  void options.exited.then(() => stop.abort());
  let lastProblem = "no answer yet";

  try {
    for (;;) {
      signal?.throwIfAborted();
      if (exit) {
        throw new AppStartError("exited", `app exited before it was ready (code ${exit.code ?? "none"}, signal ${exit.signal ?? "none"})`, {
          outputTail: exit.outputTail,
        });
      }
      const left = deadline - performance.now();
      if (left <= 0) {
        throw new AppStartError("ready_timeout", `app not ready after ${options.timeoutMs} ms (last: ${lastProblem})`, { outputTail: options.outputTail() });
      }
      try {
        const health = await client.healthCheck(AbortSignal.any([exitedOrAborted, AbortSignal.timeout(Math.ceil(Math.min(POLL_REQUEST_TIMEOUT_MS, left)))]));
        if (health.status === "READY" || health.status === "BUSY") return;
        if (health.status === "SETUP_FAILED" || health.status === "DEFUNCT") {
          const setupLogs = health.setup?.logs ?? "";
          throw new AppStartError("setup_failed", `app reported ${health.status} during setup`, { outputTail: setupLogs || options.outputTail() });
        }
        lastProblem = `health-check said ${health.status}`;
      } catch (err) {
        if (err instanceof AppStartError) throw err;
        if (signal?.aborted) throw signal.reason;
        if (exit) continue;
        // Not listening yet, or a timed-out poll: expected while the app boots.
        if (err instanceof CogError || (err as Error).name === "TimeoutError" || (err as Error).name === "AbortError") {
          lastProblem = (err as Error).message;
        } else {
          throw err;
        }
      }
      await sleep(Math.min(options.intervalMs, Math.max(0, deadline - performance.now())), undefined, { signal: exitedOrAborted }).catch(() => {});
    }
  } finally {
    stop.abort();
  }
}

/** How a runtime's instance is reached and watched while it starts. */
export interface StartingInstance {
  readonly host: string;
  readonly port: number;
  readonly readyTimeoutMs: number;
  readonly healthPollIntervalMs: number;
  readonly exited: Promise<InstanceExit>;
  readonly outputTail: () => string;
  readonly signal?: AbortSignal | undefined;
  /** Stops the instance when it does not get ready. */
  readonly stop: () => Promise<unknown>;
}

/**
 * The client of a starting instance once it is READY; if it is not (it exits,
 * fails setup, times out, or the signal aborts), the instance is stopped and
 * the error thrown. Shared by every runtime.
 */
export async function clientWhenReady(i: StartingInstance): Promise<{ baseUrl: string; client: CogClient }> {
  const baseUrl = `http://${i.host.includes(":") ? `[${i.host}]` : i.host}:${i.port}`;
  const client = createCogClient({ baseUrl });
  try {
    await waitForReady({
      client,
      timeoutMs: i.readyTimeoutMs,
      intervalMs: i.healthPollIntervalMs,
      exited: i.exited,
      outputTail: i.outputTail,
      ...(i.signal ? { signal: i.signal } : {}),
    });
  } catch (err) {
    await i.stop();
    throw err;
  }
  return { baseUrl, client };
}
