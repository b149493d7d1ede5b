import { fromJson, type JsonObject, type JsonValue, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampNow, ValueSchema } from "@bufbuild/protobuf/wkt";
import type { Assignment, ConnectRequestSchema, RunningAttempt } from "../../gen/ngpu/v1/worker_pb.js";
import { Outcome, type TaskUpdateSchema } from "../../gen/ngpu/v1/worker_pb.js";
import { inputSchemaOf } from "../runtime/cog-protocol.js";
import type { Logger } from "../log.js";
import { type AppInstance, type PredictionEvent, type PredictionOutcome, runPrediction } from "../runtime/app-instance.js";
import { runBuiltin } from "../runtime/builtin.js";
import type { InstancePool } from "../runtime/instance-pool.js";
import type { WebhookReceiver } from "../runtime/webhook-receiver.js";

type Outbound = MessageInitShape<typeof ConnectRequestSchema>;
type UpdateBody = NonNullable<MessageInitShape<typeof TaskUpdateSchema>["update"]>;

export interface TaskRunnerOptions {
  readonly logger: Logger;
  readonly pool: InstancePool;
  readonly receiver: WebhookReceiver;
  /** Starts an instance of the assignment's app on the given GPUs (process or docker runtime). */
  readonly startInstance: (assignment: Assignment, gpuIndices: readonly number[], signal: AbortSignal) => Promise<AppInstance>;
  /** Sends a message up the control stream; dropped while disconnected. */
  readonly send: (message: Outbound) => void;
  /** Told when attempts start and end on GPUs (drives simulated GPU load). */
  readonly onGpuBusy?: (gpuIndices: readonly number[], busy: boolean) => void;
  /** Results are kept this long to re-send after a reconnect (the stream may have dropped them). Default 60000 ms. */
  readonly resultRetentionMs?: number;
}

export interface TaskRunner {
  /** Runs an assignment; a repeated one (same attempt id) is ignored. */
  assign(assignment: Assignment): void;
  /** Asks a running attempt to stop; it reports CANCELLED when it has. */
  cancel(attemptId: string, reason: string): void;
  /** Attempts this worker holds, for the hello after a reconnect: running ones and finished ones not yet known delivered. */
  held(): RunningAttempt[];
  /** Re-sends results of recently finished attempts (after a reconnect). */
  resendResults(): void;
  /** Attempts running now. */
  activeCount(): number;
  /** Resolves when no attempt is running. */
  idle(): Promise<void>;
  /** Gives an assignment back without running it (RELEASED: the control plane runs it elsewhere). */
  release(assignment: Assignment): void;
  /** Gives every running attempt back unfinished (RELEASED: the control plane runs it elsewhere) and waits. */
  releaseAll(): Promise<void>;
  /** Cancels everything and waits for it to stop. */
  shutdown(): Promise<void>;
}

interface Running {
  readonly assignment: Assignment;
  readonly abort: AbortController;
  cancelReason?: string;
  released?: boolean;
}

/** The control plane enforces the execution timeout; the worker's own stop is a safety net behind it. */
const WORKER_TIMEOUT_MARGIN_MS = 5_000;

/**
 * Runs attempts the control plane assigns: gets a warm app instance (or starts
 * one: the cold start), forwards the prediction's progress, logs and outputs,
 * enforces the execution timeout, and reports one Finished with the measured
 * execution time.
 */
export function createTaskRunner(options: TaskRunnerOptions): TaskRunner {
  const { logger, pool, receiver, send } = options;
  const running = new Map<string, Running>();
  const finished = new Map<string, { ref: RunningAttempt; message: Outbound; at: number }>();
  const retentionMs = options.resultRetentionMs ?? 60_000;
  let idleWaiters: Array<() => void> = [];

  const update = (a: Assignment, body: UpdateBody): Outbound => ({
    message: {
      case: "taskUpdate",
      value: { taskId: a.taskId, attemptId: a.attemptId, fencingToken: a.fencingToken, time: timestampNow(), update: body },
    },
  });

  async function execute(entry: Running): Promise<void> {
    const a = entry.assignment;
    const log = logger.child({ task: a.taskId, attempt: a.attemptId, app: a.app?.name });
    const runtime = a.app?.runtime?.kind;
    const gpus = a.gpuIndices;
    const timeoutMs = Number(a.timeoutMs);
    let timedOut = false;
    const timer =
      timeoutMs > 0 ? setTimeout(() => ((timedOut = true), entry.abort.abort(new Error("timeout"))), timeoutMs + WORKER_TIMEOUT_MARGIN_MS) : undefined;
    const onEvent = (event: PredictionEvent) => {
      switch (event.type) {
        case "logs":
          for (const line of event.text.split(/\r?\n|\r/)) if (line.trim()) send(update(a, { case: "log", value: line }));
          return;
        case "progress":
          send(update(a, { case: "progress", value: { percent: event.progress.percent, step: event.progress.step, totalSteps: event.progress.totalSteps, message: event.progress.message } }));
          return;
        case "output":
          send(update(a, { case: "output", value: fromJson(ValueSchema, (event.output ?? null) as JsonValue) }));
          return;
        default:
          return;
      }
    };

    // "error": the worker or the instance failed, not the app's verdict on the input: worth another try.
    let outcome: PredictionOutcome | { status: "error"; error: string };
    // Set when the prediction starts: a failure before that (the app never got ready) ran for 0 ms.
    let startedAtMs: number | undefined;
    options.onGpuBusy?.(gpus, true);
    try {
      if (runtime?.case === "builtin") {
        send(update(a, { case: "started", value: { coldStartMs: 0n } }));
        startedAtMs = Date.now();
        outcome = await runBuiltin(runtime.value.name, (a.input ?? {}) as JsonObject, entry.abort.signal, onEvent);
      } else {
        const app = { id: a.app?.id ?? "", version: a.app?.version ?? 0 };
        send(update(a, { case: "coldStart", value: {} }));
        const lease = await pool.acquire(app, gpus, (g, signal) => options.startInstance(a, g, signal), entry.abort.signal);
        let healthy = true;
        try {
          if (lease.coldStartMs > 0) await announceReady(a, lease.instance, lease.coldStartMs);
          send(update(a, { case: "started", value: { coldStartMs: BigInt(Math.round(lease.coldStartMs)) } }));
          startedAtMs = Date.now();
          outcome = await runPrediction(lease.instance, receiver, {
            id: a.attemptId,
            input: (a.input ?? {}) as JsonObject,
            signal: entry.abort.signal,
            onEvent,
          });
          // An instance that did not confirm a cancel may still be busy: do not reuse it.
          if (outcome.status === "canceled" && !outcome.confirmed) healthy = false;
        } catch (err) {
          healthy = false;
          throw err;
        } finally {
          lease.release(healthy);
        }
      }
    } catch (err) {
      outcome = entry.abort.signal.aborted && !timedOut ? { status: "canceled", confirmed: false, logs: "" } : { status: "error", error: (err as Error).message };
    } finally {
      clearTimeout(timer);
      options.onGpuBusy?.(gpus, false);
    }
    const endedAtMs = Date.now();
    startedAtMs ??= endedAtMs;
    const result = entry.released
      ? { outcome: Outcome.RELEASED, error: "released: the node is draining" }
      : timedOut
        ? { outcome: Outcome.FAILED, error: `execution timed out after ${timeoutMs} ms` }
        : outcome.status === "succeeded"
          ? { outcome: Outcome.SUCCEEDED, output: fromJson(ValueSchema, (outcome.output ?? null) as JsonValue) }
          : outcome.status === "canceled"
            ? { outcome: Outcome.CANCELLED, error: entry.cancelReason ?? "cancelled" }
            : outcome.status === "error"
              ? { outcome: Outcome.FAILED, error: outcome.error, retryable: true }
              : { outcome: Outcome.FAILED, error: outcome.error };
    log.info({ outcome: Outcome[result.outcome], ms: endedAtMs - startedAtMs }, "attempt finished");
    const message = update(a, {
      case: "finished",
      value: { ...result, startedAtMs: BigInt(startedAtMs), endedAtMs: BigInt(endedAtMs), gpuMs: BigInt((endedAtMs - startedAtMs) * gpus.length) },
    });
    finished.set(a.attemptId, { ref: { taskId: a.taskId, attemptId: a.attemptId, fencingToken: a.fencingToken } as RunningAttempt, message, at: Date.now() });
    send(message);
  }

  /** Tells the control plane the app is ready here, with its input schema when it publishes one. */
  async function announceReady(a: Assignment, instance: AppInstance, coldStartMs: number) {
    let inputSchema: JsonObject | undefined;
    try {
      inputSchema = inputSchemaOf(await instance.client.openapi()) as JsonObject | undefined;
    } catch {
      inputSchema = undefined;
    }
    send({
      message: {
        case: "appReady",
        value: { appId: a.app?.id ?? "", appVersion: a.app?.version ?? 0, coldStartMs: BigInt(Math.round(coldStartMs)), ...(inputSchema ? { inputSchema } : {}) },
      },
    });
  }

  const prune = () => {
    const cutoff = Date.now() - retentionMs;
    for (const [id, f] of finished) if (f.at < cutoff) finished.delete(id);
  };
  const pruneTimer = setInterval(prune, Math.min(retentionMs, 10_000));
  pruneTimer.unref();

  return {
    assign(assignment) {
      if (running.has(assignment.attemptId) || finished.has(assignment.attemptId)) return;
      const entry: Running = { assignment, abort: new AbortController() };
      running.set(assignment.attemptId, entry);
      void execute(entry)
        .catch((err) => logger.error({ err, attempt: assignment.attemptId }, "attempt crashed"))
        .finally(() => {
          running.delete(assignment.attemptId);
          if (running.size === 0) {
            const waiters = idleWaiters;
            idleWaiters = [];
            for (const w of waiters) w();
          }
        });
    },
    cancel(attemptId, reason) {
      const entry = running.get(attemptId);
      if (!entry) return;
      entry.cancelReason = reason;
      entry.abort.abort(new Error(reason));
    },
    held() {
      prune();
      const refs = [...running.values()].map((r) => ({ taskId: r.assignment.taskId, attemptId: r.assignment.attemptId, fencingToken: r.assignment.fencingToken }) as RunningAttempt);
      return [...refs, ...[...finished.values()].map((f) => f.ref)];
    },
    resendResults() {
      prune();
      for (const f of finished.values()) send(f.message);
    },
    activeCount: () => running.size,
    idle: () => (running.size === 0 ? Promise.resolve() : new Promise<void>((resolve) => idleWaiters.push(resolve))),
    release(a) {
      const now = BigInt(Date.now());
      send(update(a, { case: "finished", value: { outcome: Outcome.RELEASED, error: "released: the node is draining", startedAtMs: now, endedAtMs: now } }));
    },
    async releaseAll() {
      for (const r of running.values()) {
        r.released = true;
        r.abort.abort(new Error("worker shutting down"));
      }
      if (running.size > 0) await new Promise<void>((resolve) => idleWaiters.push(resolve));
    },
    async shutdown() {
      clearInterval(pruneTimer);
      for (const r of running.values()) r.abort.abort(new Error("worker shutting down"));
      if (running.size > 0) await new Promise<void>((resolve) => idleWaiters.push(resolve));
    },
  };
}
