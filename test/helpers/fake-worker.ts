import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { pushable } from "it-pushable";
import {
  type Assignment,
  type CancelAttempt,
  type ConnectRequestSchema,
  type ConnectResponse,
  type HelloSchema,
  Outcome,
  type TaskUpdateSchema,
  WorkerService,
} from "../../gen/ngpu/v1/worker_pb.js";
import { sign } from "node:crypto";
import { usageClaimBytes } from "../../receipts/usage-claim.js";
import { newNodeKey, type TestNodeKey } from "./node-key.js";

type Up = MessageInitShape<typeof ConnectRequestSchema>;

/**
 * A worker the test drives by hand over the real WorkerService stream: it
 * heartbeats (unless told to stop), records what comes down, and sends exactly
 * the task updates the test asks for. For failure cases a real worker would
 * never produce on purpose.
 */
export interface FakeWorker {
  readonly nodeId: string;
  /** Its node key: pass it to a later fake worker to come back as the same node. */
  readonly key: TestNodeKey;
  /** Resolves when the control plane ends the stream: undefined, or the error it ended with. */
  readonly ended: Promise<unknown>;
  readonly assignments: Assignment[];
  readonly cancels: CancelAttempt[];
  readonly rejections: string[];
  /** Resolves with the next assignment (or one already received and not yet taken). */
  nextAssignment(timeoutMs?: number): Promise<Assignment>;
  waitForCancel(attemptId: string, timeoutMs?: number): Promise<CancelAttempt>;
  send(message: Up): void;
  started(a: Assignment, coldStartMs?: number): void;
  coldStart(a: Assignment): void;
  finish(a: Assignment, outcome: Outcome, options?: { error?: string; retryable?: boolean; startedAtMs?: number; endedAtMs?: number }): void;
  /** Stop or resume heartbeats (the stream stays open). */
  setHeartbeats(on: boolean): void;
  /** Drop the connection abruptly (as a crash or a network cut would). */
  kill(): void;
}

/** Keys of the nodes fake workers joined as: a fake worker coming back as a node uses its key, as a real one would from its disk. */
const keysByNode = new Map<string, TestNodeKey>();

export async function startFakeWorker(
  url: string,
  hello: MessageInitShape<typeof HelloSchema>,
  options: { heartbeatMs?: number; key?: TestNodeKey } = {},
): Promise<FakeWorker> {
  const key = options.key ?? (hello.nodeId ? keysByNode.get(hello.nodeId) : undefined) ?? newNodeKey();
  const sessionManager = new Http2SessionManager(url);
  const client = createClient(WorkerService, createGrpcTransport({ baseUrl: url, sessionManager }));
  const up = pushable<Up>({ objectMode: true });
  up.push({ message: { case: "hello", value: { publicKey: key.publicKey, ...hello } } });
  const abort = new AbortController();
  const down = client.connect((async function* () { yield* up; })(), { signal: abort.signal });
  const assignments: Assignment[] = [];
  const cancels: CancelAttempt[] = [];
  const rejections: string[] = [];
  let taken = 0;
  const waiters = new Set<() => void>();
  let resolveWelcome!: (id: string) => void;
  let rejectWelcome!: (err: unknown) => void;
  const welcomed = new Promise<string>((res, rej) => ((resolveWelcome = res), (rejectWelcome = rej)));
  const ended = (async (): Promise<unknown> => {
    try {
      for await (const m of down as AsyncIterable<ConnectResponse>) {
        const msg = m.message;
        if (msg.case === "challenge") up.push({ message: { case: "proof", value: { signature: key.prove(msg.value.nonce) } } });
        else if (msg.case === "welcome") resolveWelcome(msg.value.nodeId);
        // A re-sent assignment (the control plane re-drives unacknowledged ones) is the same attempt: ignore it, as a worker does.
        else if (msg.case === "assignment") {
          if (!assignments.some((a) => a.attemptId === msg.value.attemptId)) assignments.push(msg.value);
        }
        else if (msg.case === "cancel") cancels.push(msg.value);
        else if (msg.case === "rejection") rejections.push(msg.value.reason);
        for (const w of waiters) w();
      }
    } catch (err) {
      rejectWelcome(err);
      return err;
    }
    return undefined;
  })();
  const nodeId = await welcomed;
  keysByNode.set(nodeId, key);
  let heartbeats = true;
  let seq = 0n;
  const timer = setInterval(() => {
    if (heartbeats) up.push({ message: { case: "heartbeat", value: { seq: ++seq, time: timestampNow() } } });
  }, options.heartbeatMs ?? 200);

  const until = <T>(get: () => T | undefined, timeoutMs: number, what: string) =>
    new Promise<T>((resolve, reject) => {
      const check = () => {
        const v = get();
        if (v !== undefined) {
          waiters.delete(check);
          clearTimeout(t);
          resolve(v);
        }
      };
      const t = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`fake worker: no ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      waiters.add(check);
      check();
    });
  const update = (a: Assignment, u: NonNullable<MessageInitShape<typeof TaskUpdateSchema>["update"]>) =>
    up.push({ message: { case: "taskUpdate", value: { taskId: a.taskId, attemptId: a.attemptId, fencingToken: a.fencingToken, time: timestampNow(), update: u } } });

  return {
    nodeId,
    key,
    ended,
    assignments,
    cancels,
    rejections,
    nextAssignment: (timeoutMs = 10_000) => until(() => (assignments.length > taken ? assignments[taken++] : undefined), timeoutMs, "assignment"),
    waitForCancel: (attemptId, timeoutMs = 10_000) => until(() => cancels.find((c) => c.attemptId === attemptId), timeoutMs, `cancel of ${attemptId}`),
    send: (m) => up.push(m),
    started: (a, coldStartMs = 0) => update(a, { case: "started", value: { coldStartMs: BigInt(coldStartMs) } }),
    coldStart: (a) => update(a, { case: "coldStart", value: {} }),
    finish: (a, outcome, o = {}) => {
      const now = Date.now();
      // Signed like a real worker's: the usage claim, with the node key.
      const gpuUuids = a.gpuIndices.map((i) => hello.gpus?.find((g) => g.index === i)?.uuid ?? "");
      const startedAtMs = o.startedAtMs ?? now - 10;
      const endedAtMs = o.endedAtMs ?? now;
      const claim = { taskId: a.taskId, attemptId: a.attemptId, gpuUuids, startedAtMs, endedAtMs, gpuMs: (endedAtMs - startedAtMs) * gpuUuids.length };
      update(a, {
        case: "finished",
        value: {
          outcome,
          error: o.error ?? "",
          retryable: o.retryable ?? false,
          startedAtMs: BigInt(startedAtMs),
          endedAtMs: BigInt(endedAtMs),
          gpuMs: BigInt(claim.gpuMs),
          gpuUuids,
          workerSignature: new Uint8Array(sign(null, usageClaimBytes(claim), key.privateKey)),
          ...(outcome === Outcome.SUCCEEDED ? { output: { kind: { case: "stringValue", value: "done" } } } : {}),
        },
      });
    },
    setHeartbeats: (on) => (heartbeats = on),
    kill: () => {
      clearInterval(timer);
      abort.abort();
      sessionManager.abort();
    },
  };
}
