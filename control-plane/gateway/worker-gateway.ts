import { create, type JsonValue, type MessageInitShape, toJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { pushable } from "it-pushable";
import { WatchTaskResponseSchema } from "../../gen/ngpu/v1/task_pb.js";
import {
  type ConnectRequest,
  type ConnectResponse,
  ConnectResponseSchema,
  type Hello,
  Outcome,
  type TaskUpdate,
  type TelemetryReport,
  WorkerService,
} from "../../gen/ngpu/v1/worker_pb.js";
import type { Bus } from "../bus/bus.js";
import { stateSignal } from "../bus/task-events.js";
import { learnInputSchema } from "../db/apps.js";
import { loadDispatchableAttempts } from "../db/attempts.js";
import { checkEnrollmentToken, consumeEnrollmentToken, enrollmentProvider } from "../db/credentials.js";
import type { Db } from "../db/database.js";
import { disconnectNode, loadNodeIdentity, registerNode, setNodeFields, touchNodes } from "../db/nodes.js";
import { markMemberReady } from "../db/pools.js";
import type { GpuRow, ProgressRow } from "../db/schema.js";
import {
  type AttemptOutcome,
  type AttemptProgress,
  type AttemptRef,
  type FinishResult,
  finishAttemptDeciding,
  finishAttemptsPlainly,
  markAttemptsProgressing,
  type PlainFinish,
  requeueLostAttempts,
  saveProgress,
} from "../db/tasks.js";
import { createBatcher } from "./batcher.js";
import { type CheckedClaim, checkClaim, saveClaims } from "./usage-claims.js";
import { encodePublicKey, newNonce, verifyProof } from "./node-proof.js";
import { checkReportedWindow, createTokenBucket, DEFAULT_FLOOD_LIMIT, type FloodLimit, type TokenBucket } from "./stream-limits.js";
import { assignmentMessage, cancelMessage } from "../dispatch/assignment.js";
import { newId } from "../ids.js";
import type { Logger } from "../log.js";
import type { TelemetryHistory } from "../monitor/telemetry-history.js";

export interface GatewayOptions {
  readonly db: Db;
  readonly bus: Bus;
  readonly logger: Logger;
  readonly history: TelemetryHistory;
  /** Identifies this control-plane replica in the nodes table. */
  readonly gatewayId: string;
  /** Told to workers. Default 1000 ms. */
  readonly heartbeatIntervalMs?: number;
  /** Told to workers. Default 1000 ms. */
  readonly telemetryIntervalMs?: number;
  /** An assignment not acknowledged for this long is sent again. Default 2000 ms. */
  readonly redispatchAfterMs?: number;
  /** Progress is saved to the database at most this often per task (it is pushed to watchers at once). Default 250 ms. */
  readonly progressFlushMs?: number;
  /** Messages per second one worker stream may send (sustained and burst); beyond, messages are dropped with a Rejection, and a flood that goes on ends the stream. Default 5000/s, burst 20000. */
  readonly floodLimit?: FloodLimit;
  /** The first message must be a Hello within this time, and the proof of the node key within this time after the challenge. Default 10000 ms. */
  readonly helloTimeoutMs?: number;
}

export interface Gateway {
  readonly service: ServiceImpl<typeof WorkerService>;
  /** Nodes whose stream this replica holds. */
  connectedNodes(): string[];
  /** From now on, streams that end are this replica's doing, not the nodes'. */
  beginShutdown(): void;
  shutdown(): Promise<void>;
}

const NODE_ID = /^node_[0-9a-z]{26}$/;
const OUTCOMES: Partial<Record<Outcome, "SUCCEEDED" | "FAILED" | "CANCELLED" | "RELEASED">> = {
  [Outcome.SUCCEEDED]: "SUCCEEDED",
  [Outcome.FAILED]: "FAILED",
  [Outcome.CANCELLED]: "CANCELLED",
  [Outcome.RELEASED]: "RELEASED",
};
const MAX_LOG_CHARS = 4096;
/** Task updates of one worker being written at once, at most (more wait: backpressure on the stream). */
const MAX_UPDATES_IN_FLIGHT = 512;

interface Session {
  readonly nodeId: string;
  /** The node key it proved (base64url): worker usage claims must verify with it. */
  readonly publicKey: string;
  readonly gpuIndices: ReadonlySet<number>;
  /** Attempts sent to this worker and not yet finished: id → where updates must match. */
  readonly attempts: Map<string, AttemptRef>;
  /** When the control plane first knew of each of those attempts (Unix ms): reported times cannot be earlier. */
  readonly observedSince: Map<string, number>;
  readonly bucket: TokenBucket;
  /** Messages dropped for flooding, over the stream's life. */
  dropped: number;
  /** The last message was dropped (a Rejection was sent for this run of drops). */
  overLimit: boolean;
  warmAppIds: string;
  gpuError: string;
  push(message: ConnectResponse): void;
  /** Ends the stream with an error telling the worker why (ABORTED: reconnect; PERMISSION_DENIED: do not). */
  end(reason: string, code?: Code): void;
}

/**
 * Holds each worker's one gRPC stream. Up: hello, heartbeats, telemetry and
 * task updates, each checked against what the database says this node holds
 * (attempt id, node and fencing token) before anything is written. Down:
 * assignments and cancels arriving on the bus for the node.
 */
export function createGateway(options: GatewayOptions): Gateway {
  const { db, bus, logger, history, gatewayId } = options;
  const floodLimit = options.floodLimit ?? DEFAULT_FLOOD_LIMIT;
  const log = logger.child({ component: "gateway" });
  const sessions = new Map<string, Session>();
  let stopping = false;
  const seen = new Set<string>();
  const pendingProgress = new Map<string, { taskId: string; attemptId: string; progress: ProgressRow }>();
  // Task updates from all workers, written many per statement.
  const progressing = createBatcher((items: AttemptProgress[]) => markAttemptsProgressing(db, items));
  // One finish batch at a time: each writes usage rollups, rows that every finish of an app shares.
  const plainFinishes = createBatcher((items: PlainFinish[]) => finishAttemptsPlainly(db, items), { maxInFlight: 1 });
  const claims = createBatcher((items: CheckedClaim[]) => saveClaims(db, items));
  const finish = (ref: AttemptRef, outcome: AttemptOutcome): Promise<FinishResult> =>
    outcome.outcome === "SUCCEEDED" || outcome.outcome === "CANCELLED"
      ? plainFinishes.add({ ref, outcome: { ...outcome, outcome: outcome.outcome } })
      : finishAttemptDeciding(db, ref, { ...outcome, outcome: outcome.outcome });

  // Liveness: any message counts. Written in one statement for all nodes, twice a second.
  let touching = false;
  const touchTimer = setInterval(() => {
    // One write at a time: a slow one must not overlap the next (what it misses goes in the next).
    if (seen.size === 0 || touching) return;
    touching = true;
    const ids = [...seen];
    seen.clear();
    touchNodes(db, ids, gatewayId)
      .then((held) => {
        // Declared lost while its stream stayed open (it went silent, then spoke again): it must
        // reconnect, so that its hello reconciles what it still runs with what the database says.
        for (const id of ids) if (!held.has(id)) sessions.get(id)?.end("the node was declared lost; reconnect");
      })
      .catch((err) => log.warn({ err }, "heartbeat write failed"))
      .finally(() => (touching = false));
  }, 500);
  const progressTimer = setInterval(() => {
    if (pendingProgress.size === 0) return;
    const updates = [...pendingProgress.values()];
    pendingProgress.clear();
    saveProgress(db, updates).catch((err) => log.warn({ err }, "progress write failed"));
  }, options.progressFlushMs ?? 250);
  // Re-drive: an assignment whose bus message was lost is sent again from the database.
  const redispatchAfterMs = options.redispatchAfterMs ?? 2_000;
  const redispatchTimer = setInterval(() => {
    if (sessions.size === 0) return;
    loadDispatchableAttempts(db, { nodeIds: [...sessions.keys()], states: ["ASSIGNED"], olderThanMs: redispatchAfterMs })
      .then((attempts) => {
        for (const a of attempts) {
          const session = sessions.get(a.nodeId);
          if (!session) continue;
          session.attempts.set(a.attemptId, { taskId: a.taskId, attemptId: a.attemptId, fencingToken: a.fencingToken, nodeId: a.nodeId });
          if (!session.observedSince.has(a.attemptId)) session.observedSince.set(a.attemptId, a.createdAtMs);
          session.push(assignmentMessage(a));
        }
      })
      .catch((err) => log.warn({ err }, "redispatch failed"));
  }, redispatchAfterMs);
  for (const t of [touchTimer, progressTimer, redispatchTimer]) t.unref();
  const stopRevocations = bus.onNodeRevoked((nodeId) => {
    const session = sessions.get(nodeId);
    if (!session) return;
    log.warn({ node: nodeId }, "node revoked: ending its stream");
    session.end(`node ${nodeId} was revoked by the operator`, Code.PermissionDenied);
  });

  const reject = (session: Session, reason: string, update?: TaskUpdate) => {
    log.warn({ node: session.nodeId, reason, task: update?.taskId, attempt: update?.attemptId }, "worker message rejected");
    session.push(
      create(ConnectResponseSchema, {
        message: { case: "rejection", value: { reason, taskId: update?.taskId ?? "", attemptId: update?.attemptId ?? "" } },
      }),
    );
  };

  interface Admission {
    readonly nodeId: string;
    readonly gpus: GpuRow[];
    /** The key the worker must prove it holds. */
    readonly publicKey: string;
    /** A new node (or one without a key yet): it joins on its enrollment token, which this uses up. */
    readonly newNode: boolean;
  }

  /** Checks a hello without writing anything; the node is registered only once it proved its key. */
  async function admit(hello: Hello): Promise<Admission> {
    if (hello.nodeId !== "" && !NODE_ID.test(hello.nodeId)) {
      throw new ConnectError("hello.node_id: not a node id this network issued", Code.InvalidArgument);
    }
    const publicKey = encodePublicKey(hello.publicKey);
    if (!publicKey) throw new ConnectError("hello.public_key: must be the node's Ed25519 public key (32 bytes)", Code.InvalidArgument);
    const known = hello.nodeId ? await loadNodeIdentity(db, hello.nodeId) : undefined;
    if (known?.revokedAt) {
      throw new ConnectError(`hello.node_id: node ${hello.nodeId} was revoked by the operator${known.revokeReason ? ` (${known.revokeReason})` : ""}`, Code.PermissionDenied);
    }
    const newNode = !known?.publicKey;
    if (known?.publicKey && known.publicKey !== publicKey) {
      throw new ConnectError(`hello.public_key: is not the key registered for node ${hello.nodeId}`, Code.Unauthenticated);
    }
    if (newNode) {
      const problem = await checkEnrollmentToken(db, hello.enrollmentToken);
      if (problem) throw new ConnectError(`hello.enrollment_token: ${problem}`, Code.Unauthenticated);
    }
    const indices = new Set<number>();
    const gpus = hello.gpus.map((g, i): GpuRow => {
      if (indices.has(g.index)) throw new ConnectError(`hello.gpus[${i}].index: GPU ${g.index} declared twice`, Code.InvalidArgument);
      indices.add(g.index);
      if (g.model === "") throw new ConnectError(`hello.gpus[${i}].model: is required`, Code.InvalidArgument);
      return {
        index: g.index,
        uuid: g.uuid,
        model: g.model,
        memoryTotalBytes: Number(g.memoryTotalBytes),
        driverVersion: g.driverVersion,
        pciBusId: g.pciBusId,
        migEnabled: g.migEnabled,
        simulated: g.simulated,
      };
    });
    if (hello.maxConcurrentTasks > 1024) throw new ConnectError("hello.max_concurrent_tasks: must be at most 1024", Code.InvalidArgument);
    return { nodeId: hello.nodeId || newId("node"), gpus, publicKey, newNode };
  }

  async function register(hello: Hello, admission: Admission): Promise<void> {
    const { nodeId, gpus, publicKey } = admission;
    if (admission.newNode) {
      const problem = await consumeEnrollmentToken(db, hello.enrollmentToken);
      if (problem) throw new ConnectError(`hello.enrollment_token: ${problem}`, Code.Unauthenticated);
    }
    await registerNode(db, {
      id: nodeId,
      name: hello.name.slice(0, 128) || nodeId,
      gpus,
      gpuError: hello.gpuError.slice(0, 2000),
      runtimes: hello.runtimes.slice(0, 8),
      maxConcurrentTasks: hello.maxConcurrentTasks || Math.max(1, gpus.length),
      workerVersion: hello.version.slice(0, 64),
      warmAppIds: hello.warmAppIds.slice(0, 256),
      gatewayId,
      publicKey,
      // A node is paid to the provider of the token it first joined with.
      providerWorkspaceId: admission.newNode ? await enrollmentProvider(db, hello.enrollmentToken) : null,
    });
  }

  /** After a (re)connect: agree with the worker on which attempts it holds. */
  async function reconcile(session: Session, hello: Hello) {
    const known = await loadDispatchableAttempts(db, { nodeIds: [session.nodeId] });
    const runningOnWorker = new Map(hello.running.map((r) => [r.attemptId, r]));
    const lost: string[] = [];
    for (const a of known) {
      const ref = { taskId: a.taskId, attemptId: a.attemptId, fencingToken: a.fencingToken, nodeId: session.nodeId };
      session.observedSince.set(a.attemptId, a.createdAtMs);
      if (runningOnWorker.has(a.attemptId)) {
        session.attempts.set(a.attemptId, ref);
      } else if (a.state === "ASSIGNED") {
        // Never delivered: send it.
        session.attempts.set(a.attemptId, ref);
        session.push(assignmentMessage(a));
      } else {
        // Started, but the worker no longer has it (it restarted): run it again elsewhere.
        lost.push(a.attemptId);
      }
    }
    const currentIds = new Set(known.map((a) => a.attemptId));
    for (const r of hello.running) {
      if (!currentIds.has(r.attemptId)) session.push(cancelMessage(r.taskId, r.attemptId, "attempt is no longer current"));
    }
    if (lost.length > 0) {
      const changed = await requeueLostAttempts(db, lost, "the worker restarted and lost the attempt");
      for (const t of changed) bus.publishTaskEvent(t.id, stateSignal(t.id));
    }
  }

  async function onTelemetry(session: Session, report: TelemetryReport) {
    const undeclared = report.gpus.findIndex((g) => !session.gpuIndices.has(g.index));
    if (undeclared >= 0) {
      reject(session, `telemetry.gpus[${undeclared}].index: GPU ${report.gpus[undeclared]!.index} was not declared in hello; report ignored`);
      return;
    }
    if (report.error !== session.gpuError) {
      session.gpuError = report.error;
      await setNodeFields(db, session.nodeId, { gpuError: report.error.slice(0, 2000) });
    }
    // Published even when empty: a failed read clears the node's readings everywhere.
    if (report.gpus.length > 0) history.record(session.nodeId, report.gpus);
    bus.publishTelemetry(session.nodeId, report);
  }

  async function onTaskUpdate(session: Session, update: TaskUpdate) {
    const ref = session.attempts.get(update.attemptId);
    if (!ref || ref.taskId !== update.taskId || BigInt(ref.fencingToken) !== update.fencingToken) {
      reject(session, "task_update: attempt is unknown, superseded or already finished", update);
      session.push(cancelMessage(update.taskId, update.attemptId, "attempt is no longer current"));
      return;
    }
    const u = update.update;
    switch (u.case) {
      case "coldStart":
      case "started": {
        const state = u.case === "coldStart" ? "STARTING" : "RUNNING";
        const coldStartMs = u.case === "started" ? Math.max(0, Math.min(Number(u.value.coldStartMs), 86_400_000)) : 0;
        const result = await progressing.add({ ref, state, coldStartMs });
        if (!result.attemptOk) {
          session.attempts.delete(update.attemptId);
          reject(session, "task_update: attempt is no longer current", update);
          session.push(cancelMessage(update.taskId, update.attemptId, "attempt is no longer current"));
        } else if (result.taskChanged) {
          bus.publishTaskEvent(update.taskId, stateSignal(update.taskId));
        }
        return;
      }
      case "progress": {
        const p = u.value;
        if (!(p.percent >= 0 && p.percent <= 100) || (p.totalSteps > 0 && p.step > p.totalSteps)) {
          reject(session, "task_update.progress: percent must be 0-100 and step at most total_steps", update);
          return;
        }
        const progress = { percent: p.percent, step: p.step, totalSteps: p.totalSteps, message: p.message.slice(0, 500) };
        pendingProgress.set(update.taskId, { taskId: update.taskId, attemptId: update.attemptId, progress });
        bus.publishTaskEvent(update.taskId, create(WatchTaskResponseSchema, { event: { case: "progress", value: progress } }));
        return;
      }
      case "output":
        bus.publishTaskEvent(update.taskId, create(WatchTaskResponseSchema, { event: { case: "output", value: u.value } }));
        return;
      case "log":
        bus.publishTaskEvent(update.taskId, create(WatchTaskResponseSchema, { event: { case: "log", value: u.value.slice(0, MAX_LOG_CHARS) } }));
        return;
      case "finished": {
        const f = u.value;
        const outcome = OUTCOMES[f.outcome];
        if (!outcome) {
          reject(session, "task_update.finished.outcome: must be SUCCEEDED, FAILED, CANCELLED or RELEASED", update);
          return;
        }
        if (f.endedAtMs < f.startedAtMs) {
          reject(session, "task_update.finished.ended_at_ms: is before started_at_ms", update);
          return;
        }
        pendingProgress.delete(update.taskId);
        // A provider cannot bill time the control plane never saw: such times are refused (and clamped).
        const window = checkReportedWindow(
          { startedAtMs: Number(f.startedAtMs), endedAtMs: Number(f.endedAtMs) },
          { sinceMs: session.observedSince.get(update.attemptId) ?? Date.now(), nowMs: Date.now() },
        );
        if (window.refused) reject(session, window.refused, update);
        // What the worker signed goes on the attempt's receipt; kept before the attempt ends, so the receipt finds it.
        const claim = checkClaim(update.taskId, update.attemptId, f, session.publicKey);
        if (typeof claim === "string") reject(session, claim, update);
        else if (outcome !== "RELEASED") await claims.add(claim);
        const result = await finish(ref, {
          outcome,
          output: f.output ? (toJson(ValueSchema, f.output) as JsonValue) : null,
          error: f.error.slice(0, 10_000),
          retryable: f.retryable,
          workerStartedAtMs: window.startedAtMs,
          workerEndedAtMs: window.endedAtMs,
        });
        session.attempts.delete(update.attemptId);
        session.observedSince.delete(update.attemptId);
        if (!result.attemptOk) {
          reject(session, "task_update: attempt is no longer current; result discarded", update);
          return;
        }
        if (result.taskChanged) bus.publishTaskEvent(update.taskId, stateSignal(update.taskId));
        // Its GPUs are free again.
        bus.wakeScheduler();
        return;
      }
      default:
        reject(session, "task_update.update: is required", update);
    }
  }

  async function handle(session: Session, message: ConnectRequest) {
    seen.add(session.nodeId);
    const m = message.message;
    switch (m.case) {
      case "heartbeat": {
        const warm = JSON.stringify([...m.value.warmAppIds].sort());
        if (warm !== session.warmAppIds) {
          session.warmAppIds = warm;
          await setNodeFields(db, session.nodeId, { warmAppIds: m.value.warmAppIds.slice(0, 256) });
        }
        return;
      }
      case "telemetry":
        return onTelemetry(session, m.value);
      case "taskUpdate":
        return onTaskUpdate(session, m.value);
      case "appReady":
        if (m.value.inputSchema && Object.keys(m.value.inputSchema).length > 0) {
          const bytes = JSON.stringify(m.value.inputSchema).length;
          if (bytes > 256 * 1024) reject(session, "app_ready.input_schema: larger than 256 KiB; ignored");
          else await learnInputSchema(db, m.value.appId, m.value.appVersion, m.value.inputSchema);
        }
        await markMemberReady(db, session.nodeId, m.value.appId, Math.max(0, Math.min(Number(m.value.coldStartMs), 86_400_000)));
        return;
      case "draining":
        // No new work from now on; what runs may finish or come back RELEASED.
        await setNodeFields(db, session.nodeId, { state: "DRAINING" });
        log.info({ node: session.nodeId, graceMs: m.value.graceMs }, "worker draining");
        return;
      case "hello":
        reject(session, "hello: sent twice on one stream; ignored");
        return;
      default:
        reject(session, "message: empty or of an unknown kind; ignored");
    }
  }

  const service: ServiceImpl<typeof WorkerService> = {
    async *connect(requests, context) {
      const iterator = requests[Symbol.asyncIterator]();
      const helloTimeoutMs = options.helloTimeoutMs ?? 10_000;
      let timer: NodeJS.Timeout | undefined;
      const within = <T>(promise: Promise<T>, what: string) =>
        Promise.race([
          promise,
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new ConnectError(`no ${what} within the time allowed`, Code.DeadlineExceeded)), helloTimeoutMs);
          }),
        ]).finally(() => clearTimeout(timer));
      const first = await within(iterator.next(), "hello");
      if (first.done || first.value.message.case !== "hello") {
        throw new ConnectError("the first message on a worker stream must be a hello", Code.InvalidArgument);
      }
      const hello = first.value.message.value;
      const admission = await admit(hello);
      // Prove the node key before anything is written: sign a nonce fresh for this stream.
      const nonce = newNonce();
      yield create(ConnectResponseSchema, { message: { case: "challenge", value: { nonce } } });
      const answer = await within(iterator.next(), "proof of the node key");
      if (answer.done || answer.value.message.case !== "proof") {
        throw new ConnectError("proof: the answer to the challenge must come next", Code.InvalidArgument);
      }
      if (!verifyProof(admission.publicKey, nonce, answer.value.message.value.signature)) {
        log.warn({ node: admission.nodeId }, "worker failed to prove its node key");
        throw new ConnectError(`proof.signature: does not verify with the key of node ${admission.nodeId || "(new)"}`, Code.Unauthenticated);
      }
      await register(hello, admission);
      const { nodeId, gpus } = admission;
      const out = pushable<MessageInitShape<typeof ConnectResponseSchema>>({ objectMode: true });
      const session: Session = {
        nodeId,
        publicKey: admission.publicKey,
        gpuIndices: new Set(gpus.map((g) => g.index)),
        attempts: new Map(),
        observedSince: new Map(),
        bucket: createTokenBucket(floodLimit, Date.now()),
        dropped: 0,
        overLimit: false,
        warmAppIds: JSON.stringify([...hello.warmAppIds].sort()),
        gpuError: hello.gpuError,
        push: (m) => out.push(m),
        end: (reason, code = Code.Aborted) => out.end(new ConnectError(reason, code)),
      };
      // A node reconnecting here while an older stream of it is still open: the newest stream wins.
      sessions.get(nodeId)?.push(create(ConnectResponseSchema, { message: { case: "rejection", value: { reason: "superseded by a newer connection of this node" } } }));
      sessions.set(nodeId, session);
      const unsubscribe = bus.onNodeMessage(nodeId, (message) => {
        if (message.message.case === "assignment") {
          const a = message.message.value;
          session.attempts.set(a.attemptId, { taskId: a.taskId, attemptId: a.attemptId, fencingToken: Number(a.fencingToken), nodeId });
          if (!session.observedSince.has(a.attemptId)) session.observedSince.set(a.attemptId, Date.now());
        }
        out.push(message);
      });
      const log2 = log.child({ node: nodeId });
      log2.info({ gpus: gpus.length, name: hello.name }, "worker connected");
      out.push({
        message: {
          case: "welcome",
          value: { nodeId, heartbeatIntervalMs: options.heartbeatIntervalMs ?? 1_000, telemetryIntervalMs: options.telemetryIntervalMs ?? 1_000 },
        },
      });
      const pump = (async () => {
        await reconcile(session, hello);
        bus.wakeScheduler();
        // Updates of different attempts are written concurrently (so they batch across
        // attempts and workers); updates of one attempt stay in order.
        const chains = new Map<string, Promise<void>>();
        let failure: unknown;
        for (;;) {
          const next = await iterator.next();
          if (next.done) break;
          if (failure) throw failure;
          if (!session.bucket.take(Date.now())) {
            // Over its limit: drop, say so once per run of drops, and hang up on a flood that goes on.
            session.dropped++;
            if (!session.overLimit) reject(session, `flood: more than ${floodLimit.perSecond} messages per second (burst ${floodLimit.burst}); messages are dropped`);
            session.overLimit = true;
            if (session.dropped > floodLimit.burst) {
              log.warn({ node: nodeId, dropped: session.dropped }, "worker stream flooding: closing it");
              throw new ConnectError(`flood: more than ${floodLimit.burst} messages dropped over the limit of ${floodLimit.perSecond} per second; stream closed`, Code.ResourceExhausted);
            }
            continue;
          }
          session.overLimit = false;
          const m = next.value.message;
          if (m.case !== "taskUpdate") {
            await handle(session, next.value);
            continue;
          }
          if (chains.size >= MAX_UPDATES_IN_FLIGHT) await Promise.race(chains.values());
          const key = m.value.attemptId;
          const chain: Promise<void> = (chains.get(key) ?? Promise.resolve())
            .then(() => handle(session, next.value))
            .catch((err: unknown) => {
              // Not recorded: end the stream, so the worker reconnects and sends its results again.
              failure ??= err;
              session.end("the control plane could not record an update; reconnect");
            })
            .finally(() => {
              if (chains.get(key) === chain) chains.delete(key);
            });
          chains.set(key, chain);
        }
        await Promise.all(chains.values());
        if (failure) throw failure;
      })();
      pump.then(
        () => out.end(),
        (err) => out.end(err instanceof ConnectError ? err : new ConnectError("worker stream failed", Code.Internal, undefined, undefined, err)),
      );
      const onAbort = () => out.end();
      context.signal.addEventListener("abort", onAbort);
      try {
        yield* out;
      } finally {
        context.signal.removeEventListener("abort", onAbort);
        unsubscribe();
        if (sessions.get(nodeId) === session) {
          sessions.delete(nodeId);
          // When this replica stops, the node did not leave: it will reconnect to a replica, and
          // until then it is judged as a node whose replica is gone (see the monitor).
          if (!stopping) await disconnectNode(db, nodeId, gatewayId).catch((err) => log2.warn({ err }, "could not mark node offline"));
        }
        log2.info("worker disconnected");
      }
    },
  };

  return {
    service,
    connectedNodes: () => [...sessions.keys()],
    beginShutdown() {
      stopping = true;
    },
    async shutdown() {
      stopping = true;
      stopRevocations();
      for (const t of [touchTimer, progressTimer, redispatchTimer]) clearInterval(t);
      if (pendingProgress.size > 0) await saveProgress(db, [...pendingProgress.values()]).catch(() => {});
    },
  };
}
