import { setTimeout as sleep } from "node:timers/promises";
import type { PredictionEvent, PredictionOutcome } from "./app-instance.js";

const MAX_SLEEP_SECONDS = 3600;
/** Longest simulated cold start (10 minutes). */
const MAX_COLD_START_MS = 600_000;

/**
 * A builtin app's "instance": nothing runs, but it has a cold start, so pools
 * and warm starts can be exercised without app servers. The app's env
 * COLD_START_MS (a whole number of ms) sets how long starting one takes, as
 * loading a model would; unset means instant.
 */
export interface BuiltinInstance {
  readonly kind: "builtin";
  readonly name: string;
  readonly coldStartMs: number;
  readonly exited: Promise<unknown>;
  stop(): Promise<unknown>;
}

/** The simulated cold start an app's env asks for, in ms (0 when unset or invalid). */
export function simulatedColdStartMs(env: Readonly<Record<string, string>>): number {
  const ms = Number(env.COLD_START_MS ?? 0);
  return Number.isInteger(ms) && ms > 0 ? Math.min(ms, MAX_COLD_START_MS) : 0;
}

export async function startBuiltinInstance(name: string, env: Readonly<Record<string, string>>, signal: AbortSignal): Promise<BuiltinInstance> {
  const coldStartMs = simulatedColdStartMs(env);
  const t0 = performance.now();
  if (coldStartMs > 0) await sleep(coldStartMs, undefined, { signal });
  let stopped!: () => void;
  const exited = new Promise<void>((resolve) => (stopped = resolve));
  return {
    kind: "builtin",
    name,
    coldStartMs: coldStartMs > 0 ? Math.round(performance.now() - t0) : 0,
    exited,
    stop: async () => stopped(),
  };
}

/**
 * Runs a builtin app. "echo" returns its input at once. "sleep" waits
 * input.seconds (default 1), reporting progress in input.steps steps (default 10), and stops early
 * when aborted; input.fail makes it fail with that message, to exercise errors.
 */
export async function runBuiltin(
  name: string,
  input: Readonly<Record<string, unknown>>,
  signal: AbortSignal,
  onEvent: (event: PredictionEvent) => void,
): Promise<PredictionOutcome> {
  onEvent({ type: "started" });
  if (name === "echo") return { status: "succeeded", output: input, predictTimeMs: 0, logs: "" };
  if (name !== "sleep") return { status: "failed", code: "invalid_input", error: `unknown builtin app ${JSON.stringify(name)}`, logs: "" };
  const seconds = input.seconds ?? 1;
  if (typeof seconds !== "number" || !(seconds >= 0 && seconds <= MAX_SLEEP_SECONDS)) {
    return { status: "failed", code: "invalid_input", error: `seconds: must be a number from 0 to ${MAX_SLEEP_SECONDS}`, logs: "" };
  }
  // input.steps: how many progress reports (1-100, default 10); fewer make a lighter load for benchmarks.
  const steps = typeof input.steps === "number" && Number.isInteger(input.steps) && input.steps >= 1 && input.steps <= 100 ? input.steps : 10;
  for (let step = 1; step <= steps; step++) {
    try {
      await sleep((seconds * 1000) / steps, undefined, { signal });
    } catch {
      return { status: "canceled", confirmed: true, logs: "" };
    }
    onEvent({ type: "progress", progress: { percent: (step / steps) * 100, step, totalSteps: steps, message: `slept ${((seconds * step) / steps).toFixed(1)} s` } });
  }
  if (typeof input.fail === "string") return { status: "failed", code: "prediction_failed", error: input.fail, logs: "" };
  return { status: "succeeded", output: { slept_seconds: seconds }, predictTimeMs: seconds * 1000, logs: "" };
}
