import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { connect, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import {
  ConnectResponseSchema,
  type ConnectResponse,
  TelemetryReportSchema,
  type TelemetryReport,
} from "../../gen/ngpu/v1/worker_pb.js";
import { WatchTaskResponseSchema, type WatchTaskResponse } from "../../gen/ngpu/v1/task_pb.js";
import type { Logger } from "../log.js";

/**
 * Signals and dispatch between the control plane's roles, over core NATS.
 * Nothing here is the record: Postgres is. A lost message only delays work until
 * a reconciler re-drives it from the database, so at-most-once delivery is enough.
 *
 * Subjects (all under the configured prefix):
 * - `<p>.sched.wake` — there may be something to schedule (a task arrived, a GPU freed up).
 * - `<p>.node.<nodeId>` — messages for a worker's stream (assignments, cancels), to whichever
 *   replica holds it.
 * - `<p>.task.<taskId>` — task events for watchers.
 * - `<p>.telemetry.<nodeId>` — GPU readings, so every replica can answer for every node.
 * - `<p>.revoked.node` — an operator revoked a node: whichever replica holds its stream ends it.
 */
export interface Bus {
  wakeScheduler(): void;
  onSchedulerWake(handler: () => void): () => void;
  sendToNode(nodeId: string, message: ConnectResponse): void;
  onNodeMessage(nodeId: string, handler: (message: ConnectResponse) => void): () => void;
  publishTaskEvent(taskId: string, event: WatchTaskResponse): void;
  onTaskEvent(taskId: string, handler: (event: WatchTaskResponse) => void): () => void;
  publishTelemetry(nodeId: string, report: TelemetryReport): void;
  onTelemetry(handler: (nodeId: string, report: TelemetryReport) => void): () => void;
  publishNodeRevoked(nodeId: string): void;
  onNodeRevoked(handler: (nodeId: string) => void): () => void;
  /** Resolves once every published message has reached the server. */
  flush(): Promise<void>;
  close(): Promise<void>;
}

export interface BusOptions {
  /** NATS server URL(s), from NATS_URL. */
  readonly url: string;
  /** Subject prefix, so several networks (or tests) can share one NATS server. */
  readonly prefix: string;
  readonly name: string;
  readonly logger: Logger;
}

export async function connectBus(options: BusOptions): Promise<Bus> {
  const { prefix, logger } = options;
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers: options.url.split(","),
      name: options.name,
      // Keep trying forever: a NATS restart must not take the control plane down.
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      timeout: 5_000,
    });
  } catch (cause) {
    throw new Error(`cannot reach NATS at NATS_URL (${options.url}): ${(cause as Error).message}`, { cause });
  }
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === "disconnect" || status.type === "reconnect") logger.warn({ component: "bus", status: status.type }, "nats connection changed");
    }
  })().catch(() => {});

  const subscribe = (subject: string, handler: (data: Uint8Array, subject: string) => void): (() => void) => {
    const sub: Subscription = nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err) return;
        try {
          handler(msg.data, msg.subject);
        } catch (error) {
          logger.error({ component: "bus", subject, err: error }, "bus handler failed");
        }
      },
    });
    return () => sub.unsubscribe();
  };
  const publish = (subject: string, data: Uint8Array) => {
    // Publishing while disconnected buffers in the client; if the connection is closed, drop:
    // the database still holds the truth and a reconciler will re-drive.
    if (!nc.isClosed()) nc.publish(subject, data);
  };

  return {
    wakeScheduler: () => publish(`${prefix}.sched.wake`, new Uint8Array()),
    onSchedulerWake: (handler) => subscribe(`${prefix}.sched.wake`, () => handler()),
    sendToNode: (nodeId, message) => publish(`${prefix}.node.${nodeId}`, toBinary(ConnectResponseSchema, message)),
    onNodeMessage: (nodeId, handler) => subscribe(`${prefix}.node.${nodeId}`, (data) => handler(fromBinary(ConnectResponseSchema, data))),
    publishTaskEvent: (taskId, event) => publish(`${prefix}.task.${taskId}`, toBinary(WatchTaskResponseSchema, event)),
    onTaskEvent: (taskId, handler) => subscribe(`${prefix}.task.${taskId}`, (data) => handler(fromBinary(WatchTaskResponseSchema, data))),
    publishTelemetry: (nodeId, report) => publish(`${prefix}.telemetry.${nodeId}`, toBinary(TelemetryReportSchema, report)),
    onTelemetry: (handler) => {
      const at = prefix.length + ".telemetry.".length;
      return subscribe(`${prefix}.telemetry.*`, (data, subject) => handler(subject.slice(at), fromBinary(TelemetryReportSchema, data)));
    },
    publishNodeRevoked: (nodeId) => publish(`${prefix}.revoked.node`, new TextEncoder().encode(nodeId)),
    onNodeRevoked: (handler) => subscribe(`${prefix}.revoked.node`, (data) => handler(new TextDecoder().decode(data))),
    flush: () => nc.flush(),
    close: async () => {
      if (nc.isClosed()) return;
      await nc.drain().catch(() => nc.close());
    },
  };
}
