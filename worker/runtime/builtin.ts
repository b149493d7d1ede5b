import { setTimeout as sleep } from "node:timers/promises";
import type { PredictionEvent, PredictionOutcome } from "./app-instance.js";

const MAX_SLEEP_SECONDS = 3600;

/**
 * Runs a builtin app. "echo" returns its input at once. "sleep" waits
 * input.seconds (default 1), reporting progress in ten steps, and stops early
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
  const steps = 10;
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
