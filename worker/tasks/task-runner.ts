import { fromJson, type JsonObject, type JsonValue, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampNow, ValueSchema } from "@bufbuild/protobuf/wkt";
import type { AppSpec, Assignment, ConnectRequestSchema, RunningAttempt, WarmApp } from "../../gen/ngpu/v1/worker_pb.js";
import { Outcome, type TaskUpdateSchema } from "../../gen/ngpu/v1/worker_pb.js";
import { inputSchemaOf } from "../runtime/cog-protocol.js";
import type { Logger } from "../log.js";
import { type PredictionEvent, type PredictionOutcome, runPrediction } from "../runtime/app-instance.js";
import { runBuiltin, simulatedColdStartMs } from "../runtime/builtin.js";
import type { Instance, InstancePool } from "../runtime/instance-pool.js";
import type { WebhookReceiver } from "../runtime/webhook-receiver.js";

type Outbound = MessageInitShape<typeof ConnectRequestSchema>;
type UpdateBody = NonNullable<MessageInitShape<typeof TaskUpdateSchema>["update"]>;

export interface TaskRunnerOptions {
  readonly logger: Logger;
  readonly pool: InstancePool;
  readonly receiver: WebhookReceiver;
  /** Starts an instance of the app on the given GPUs (process, docker or builtin runtime). */
  readonly startInstance: (app: AppSpec | undefined, gpuIndices: readonly number[], signal: AbortSignal) => Promise<Instance>;
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
  /** The node joined the app's pool: start its instance now and say when it is ready (AppReady). */
  warmApp(warm: WarmApp): void;
  /** The node left the app's pool: stop its instances once idle. */
  releaseApp(appId: string): void;
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
      const app = { id: a.app?.id ?? "", version: a.app?.version ?? 0 };
      // A builtin without a simulated cold start starts instantly: no STARTING state to report.
      const instant = runtime?.case === "builtin" && simulatedColdStartMs(a.app?.env ?? {}) === 0;
      if (!instant && !pool.hasIdle(app, gpus)) send(update(a, { case: "coldStart", value: {} }));
      const lease = await pool.acquire(app, gpus, (g, signal) => options.startInstance(a.app, g, signal), entry.abort.signal);
      let healthy = true;
      try {
        if (lease.coldStartMs > 0) await announceReady(a.app, lease.instance, lease.coldStartMs);
        send(update(a, { case: "started", value: { coldStartMs: BigInt(Math.round(lease.coldStartMs)) } }));
        startedAtMs = Date.now();
        const instance = lease.instance;
        if (instance.kind === "builtin") {
          outcome = await runBuiltin(instance.name, (a.input ?? {}) as JsonObject, entry.abort.signal, onEvent);
        } else {
          outcome = await runPrediction(instance, receiver, {
            id: a.attemptId,
            input: (a.input ?? {}) as JsonObject,
            signal: entry.abort.signal,
            onEvent,
          });
          // An instance that did not confirm a cancel may still be busy: do not reuse it.
          if (outcome.status === "canceled" && !outcome.confirmed) healthy = false;
        }
      } catch (err) {
        healthy = false;
        throw err;
      } finally {
        lease.release(healthy);
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
  async function announceReady(app: AppSpec | undefined, instance: Instance, coldStartMs: number) {
    let inputSchema: JsonObject | undefined;
    try {
      inputSchema = instance.kind === "builtin" ? undefined : (inputSchemaOf(await instance.client.openapi()) as JsonObject | undefined);
    } catch {
      inputSchema = undefined;
    }
    send({
      message: {
        case: "appReady",
        value: { appId: app?.id ?? "", appVersion: app?.version ?? 0, coldStartMs: BigInt(Math.round(coldStartMs)), ...(inputSchema ? { inputSchema } : {}) },
      },
    });
  }

  /** Warm-ups in progress, by app id: a release aborts them. */
  const warming = new Map<string, AbortController>();

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
    warmApp(w) {
      const app = { id: w.app?.id ?? "", version: w.app?.version ?? 0 };
      if (warming.has(app.id)) return;
      const abort = new AbortController();
      warming.set(app.id, abort);
      const log = logger.child({ app: w.app?.name, appId: app.id });
      void pool
        .warm(app, w.gpuIndices, (g, signal) => options.startInstance(w.app, g, signal), abort.signal)
        .then(async (warmed) => {
          if (!warmed) return;
          // Also when it was already there: the control plane may not know (a resent WarmApp).
          log.info({ coldStartMs: warmed.coldStartMs }, "app warmed for its pool");
          await announceReady(w.app, warmed.instance, warmed.coldStartMs);
        })
        .catch((err: unknown) => {
          if (!abort.signal.aborted) log.warn({ err: (err as Error).message }, "warming the app failed");
        })
        .finally(() => {
          if (warming.get(app.id) === abort) warming.delete(app.id);
        });
    },
    releaseApp(appId) {
      warming.get(appId)?.abort(new Error("released"));
      warming.delete(appId);
      pool.releaseApp(appId);
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
