// A running app instance (a process or a container speaking Cog HTTP), and the one way the worker
// runs a prediction on it: start it async, follow its webhooks, cancel on abort.
import { setTimeout as sleep } from "node:timers/promises";
import type { CogClient } from "./cog-client.js";
import { describeValidationIssues, type CogPrediction, type CogValidationIssue } from "./cog-protocol.js";
import { CogError } from "./errors.js";
import { lastProgress, type Progress } from "./parse-progress.js";
import type { WebhookReceiver } from "./webhook-receiver.js";

/** How an instance ended. */
export interface InstanceExit {
  /** Exit code, or null when it was killed by a signal (or the code is unknown). */
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** True when the runtime stopped it (`stop()`), false when it died on its own. */
  readonly stopped: boolean;
  /** The last of its output, for diagnosis. */
  readonly outputTail: string;
}

/** One started app instance; both runtimes (process, docker) implement this. */
export interface AppInstance {
  readonly kind: "process" | "docker";
  /** Where its Cog HTTP API answers, e.g. `http://127.0.0.1:41235`. */
  readonly baseUrl: string;
  /** Host name the app uses to reach the worker's webhook receiver (`127.0.0.1`, or `host.docker.internal` in a container). */
  readonly webhookHost: string;
  /** From the start command until health-check first said READY, in ms: the cold start. */
  readonly coldStartMs: number;
  /** A client bound to {@link AppInstance.baseUrl}. */
  readonly client: CogClient;
  /** Settles when the instance has ended, whether stopped or crashed. Never rejects. */
  readonly exited: Promise<InstanceExit>;
  /** The last of the app's output so far. */
  outputTail(): string;
  /**
   * Stops the instance: a polite signal, then a forced kill after the runtime's grace period.
   * Idempotent; resolves once it is gone.
   */
  stop(): Promise<InstanceExit>;
}

/** The instance ended while a prediction was running on it. */
export class InstanceExitedError extends Error {
  override readonly name = "InstanceExitedError";
  readonly code = "instance_exited";
  constructor(readonly exit: InstanceExit) {
    super(
      `app instance exited during the prediction (code ${exit.code ?? "none"}, signal ${exit.signal ?? "none"})` +
        (exit.outputTail.trim() ? `\n--- app output (last lines) ---\n${exit.outputTail.trim().split("\n").slice(-20).join("\n")}` : ""),
    );
  }
}

/** Something that happened while a prediction ran, in the order the app reported it. */
export type PredictionEvent =
  /** The app started work on it. */
  | { readonly type: "started" }
  /** New log text (only what is new since the previous `logs` event). */
  | { readonly type: "logs"; readonly text: string }
  /** Progress read from the new log text (the latest tqdm line in it). */
  | { readonly type: "progress"; readonly progress: Progress }
  /** The output so far (iterator apps: the list so far; others: the final output, once). */
  | { readonly type: "output"; readonly output: unknown };

/** How a prediction ended. */
export type PredictionOutcome =
  | {
      readonly status: "succeeded";
      readonly output: unknown;
      /** The app's own `metrics.predict_time`, in ms, when it reported one. */
      readonly predictTimeMs: number | undefined;
      /** All the prediction's logs. */
      readonly logs: string;
    }
  | {
      readonly status: "failed";
      /** `invalid_input`: the app refused the input (422) and never ran; `prediction_failed`: it ran and failed. */
      readonly code: "invalid_input" | "prediction_failed";
      readonly error: string;
      /** The app's validation issues, for `invalid_input`. */
      readonly issues?: readonly CogValidationIssue[];
      readonly logs: string;
    }
  | {
      readonly status: "canceled";
      /**
       * True when the app confirmed (`canceled` webhook); false when it did not within the cancel
       * timeout, or died: the caller should then consider the instance unhealthy and stop it.
       */
      readonly confirmed: boolean;
      readonly logs: string;
    };

export interface RunPredictionOptions {
  /** Prediction id; also the idempotency key of `PUT /predictions/{id}`. */
  readonly id: string;
  readonly input: Readonly<Record<string, unknown>>;
  /** Aborting asks the app to cancel, then waits up to `cancelTimeoutMs` for it to confirm. */
  readonly signal?: AbortSignal;
  /**
   * Receives events as they arrive. It must not throw; if it does, the prediction is canceled on a
   * best-effort basis and `runPrediction` rejects with that error.
   */
  readonly onEvent?: (event: PredictionEvent) => void;
  /** How long to wait for the app to confirm a cancel, in ms (default 10 000). */
  readonly cancelTimeoutMs?: number;
}

export const DEFAULT_CANCEL_TIMEOUT_MS = 10_000;

type Waited =
  | { readonly kind: "completed"; readonly prediction: CogPrediction }
  | { readonly kind: "aborted" }
  | { readonly kind: "exited"; readonly exit: InstanceExit }
  | { readonly kind: "listener_error"; readonly error: unknown }
  | { readonly kind: "timeout" };

/**
 * Runs one prediction on an instance and resolves with how it ended. The app's verdict wins: if
 * it completes before a cancel lands, the outcome is `succeeded` even though the signal fired.
 *
 * Rejects (the prediction did not run to a verdict) with {@link CogError} (`busy`, `unreachable`,
 * `not_ready`, `protocol`, …), {@link InstanceExitedError}, the listener's error, or the signal's
 * reason when it was aborted before the prediction was sent.
 */
export async function runPrediction(instance: AppInstance, receiver: WebhookReceiver, options: RunPredictionOptions): Promise<PredictionOutcome> {
  const { id, input, signal, onEvent } = options;
  const cancelTimeoutMs = options.cancelTimeoutMs ?? DEFAULT_CANCEL_TIMEOUT_MS;
  signal?.throwIfAborted();

  let logs = "";
  let resolveWaited: (w: Waited) => void = () => {};
  // Webhook-side happenings (completion, a throwing listener) land here; the first one counts.
  const fromWebhook = new Promise<Waited>((resolve) => {
    resolveWaited = resolve;
  });
  const emit = (event: PredictionEvent) => {
    if (!onEvent) return;
    try {
      onEvent(event);
    } catch (error) {
      resolveWaited({ kind: "listener_error", error });
    }
  };

  const subscription = receiver.subscribe(id, (event) => {
    switch (event.type) {
      case "start":
        emit({ type: "started" });
        break;
      case "logs": {
        logs += event.newLogs;
        emit({ type: "logs", text: event.newLogs });
        const progress = lastProgress(event.newLogs);
        if (progress) emit({ type: "progress", progress });
        break;
      }
      case "output":
        emit({ type: "output", output: event.output });
        break;
      case "completed":
        resolveWaited({ kind: "completed", prediction: event.prediction });
        break;
    }
  });

  const abortController = new AbortController();
  const aborted: Promise<Waited> = new Promise((resolve) => {
    if (!signal) return;
    const onAbort = () => resolve({ kind: "aborted" });
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true, signal: abortController.signal });
  });
  const exited: Promise<Waited> = instance.exited.then((exit) => ({ kind: "exited", exit }));

  try {
    let accepted: CogPrediction;
    try {
      // The caller's signal is not passed here: an abort mid-request would leave us not knowing
      // whether the prediction exists. The request is short (timeout-bounded); we cancel after it.
      accepted = await instance.client.predict(id, input, subscription.webhookUrl(instance.webhookHost));
    } catch (err) {
      if (err instanceof CogError && err.code === "invalid_input") {
        const issues = Array.isArray(err.detail) ? (err.detail as CogValidationIssue[]) : [];
        return { status: "failed", code: "invalid_input", error: describeValidationIssues(issues) || err.message, issues, logs };
      }
      throw err;
    }
    // An app that ignored `Prefer: respond-async` answered with the finished prediction.
    if (accepted.status === "succeeded" || accepted.status === "failed" || accepted.status === "canceled") {
      resolveWaited({ kind: "completed", prediction: accepted });
    }

    const first = await Promise.race([fromWebhook, aborted, exited]);
    switch (first.kind) {
      case "completed":
        return outcomeOf(first.prediction, logs);
      case "exited":
        throw new InstanceExitedError(first.exit);
      case "listener_error":
        await instance.client.cancel(id).catch(() => false);
        throw first.error;
      case "aborted":
      case "timeout":
        break;
    }

    // Aborted: ask the app to stop, then wait for its verdict, but not forever.
    const known = await instance.client.cancel(id).catch(() => undefined);
    const timer = new AbortController();
    const second = await Promise.race([
      fromWebhook,
      exited,
      // Nothing running there (404) or no answer: a completed webhook may still be in flight, so
      // wait a moment rather than the full timeout.
      sleep(known === true ? cancelTimeoutMs : Math.min(cancelTimeoutMs, 1_000), { kind: "timeout" } as Waited, { signal: timer.signal }).catch(
        () => ({ kind: "timeout" }) as Waited,
      ),
    ]);
    timer.abort();
    if (second.kind === "completed") return outcomeOf(second.prediction, logs);
    if (second.kind === "listener_error") throw second.error;
    return { status: "canceled", confirmed: false, logs };
  } finally {
    abortController.abort();
    subscription.close();
  }
}

function outcomeOf(prediction: CogPrediction, streamedLogs: string): PredictionOutcome {
  // The terminal object carries the full logs; fall back to what streamed in if an app omits them.
  const logs = prediction.logs ?? streamedLogs;
  switch (prediction.status) {
    case "succeeded": {
      const seconds = prediction.metrics?.predict_time;
      return {
        status: "succeeded",
        output: prediction.output ?? null,
        predictTimeMs: typeof seconds === "number" ? Math.round(seconds * 1000) : undefined,
        logs,
      };
    }
    case "canceled":
      return { status: "canceled", confirmed: true, logs };
    default:
      return { status: "failed", code: "prediction_failed", error: prediction.error || "prediction failed without an error message", logs };
  }
}
