import { sql } from "kysely";
import type { Bus } from "../bus/bus.js";
import { stateSignal } from "../bus/task-events.js";
import type { Db } from "../db/database.js";
import { endAbandonedAttempts, expireQueuedTasks, requeueLostAttempts, timeOutAttempts } from "../db/tasks.js";
import { cancelMessage } from "../dispatch/assignment.js";
import type { Logger } from "../log.js";

export interface NodeMonitorOptions {
  readonly db: Db;
  readonly bus: Bus;
  readonly logger: Logger;
  /** A connected node silent for this long is lost and its attempts go back to the queue. Default 3000 ms. */
  readonly lostAfterMs?: number;
  /** A node whose stream closed gets this long to reconnect before its attempts go back to the queue. Default 1000 ms. */
  readonly reconnectGraceMs?: number;
  /** A worker that does not confirm stopping an ended task's attempt within this is overruled. Default 10000 ms. */
  readonly cancelGraceMs?: number;
  /** How often to look. Default 250 ms. */
  readonly checkIntervalMs?: number;
}

export interface NodeMonitor {
  /** One check now; resolves with the tasks it moved. */
  check(): Promise<string[]>;
  shutdown(): Promise<void>;
}

/**
 * Liveness and deadlines, enforced by the control plane itself:
 * - nodes whose heartbeats stop are LOST, and nodes whose stream closed get a
 *   short grace period; then their attempts are LOST and their tasks re-queued
 *   (or FAILED when out of tries);
 * - running attempts past their execution timeout end TIMED_OUT;
 * - attempts of ended tasks that the worker never confirmed stopping are ended;
 * - queued tasks past their time-to-live end EXPIRED.
 * Safe on every replica at once: each statement only acts on rows still in the state it expects.
 */
export function startNodeMonitor(options: NodeMonitorOptions): NodeMonitor {
  const { db, bus, logger } = options;
  const log = logger.child({ component: "monitor" });
  const lostAfterSecs = (options.lostAfterMs ?? 3_000) / 1000;
  const graceSecs = (options.reconnectGraceMs ?? 1_000) / 1000;
  const cancelGraceMs = options.cancelGraceMs ?? 10_000;
  let running: Promise<string[]> | undefined;

  async function check(): Promise<string[]> {
    const moved: string[] = [];
    const lostNodes = await sql<{ id: string }>`
      UPDATE nodes SET state = 'LOST', gateway_id = NULL
      WHERE state IN ('ONLINE', 'DRAINING') AND last_heartbeat_at < now() - make_interval(secs => ${lostAfterSecs})
      RETURNING id`.execute(db);
    for (const n of lostNodes.rows) log.warn({ node: n.id }, "node lost: no heartbeat");

    const orphaned = await sql<{ id: string }>`
      SELECT at.id FROM attempts at JOIN nodes n ON n.id = at.node_id
      WHERE at.ended_at IS NULL AND (
        n.state = 'LOST'
        OR (n.state = 'OFFLINE' AND (n.disconnected_at IS NULL OR n.disconnected_at < now() - make_interval(secs => ${graceSecs})))
      )
      LIMIT 1000`.execute(db);
    if (orphaned.rows.length > 0) {
      const changed = await requeueLostAttempts(
        db,
        orphaned.rows.map((r) => r.id),
        "the node stopped responding",
      );
      if (changed.length > 0) log.warn({ tasks: changed.length }, "tasks moved off lost nodes");
      moved.push(...changed.map((t) => t.id));
    }

    for (const t of await timeOutAttempts(db)) {
      bus.sendToNode(t.nodeId, cancelMessage(t.taskId, t.attemptId, "execution timed out"));
      moved.push(t.taskId);
    }
    for (const t of await endAbandonedAttempts(db, cancelGraceMs)) {
      bus.sendToNode(t.nodeId, cancelMessage(t.taskId, t.attemptId, "the task has ended"));
    }
    moved.push(...(await expireQueuedTasks(db)));

    for (const id of moved) bus.publishTaskEvent(id, stateSignal(id));
    if (moved.length > 0) bus.wakeScheduler();
    return moved;
  }

  const timer = setInterval(() => {
    if (running) return;
    running = check()
      .catch((err) => {
        log.warn({ err }, "node check failed");
        return [];
      })
      .finally(() => (running = undefined));
  }, options.checkIntervalMs ?? 250);
  timer.unref();

  return {
    check,
    async shutdown() {
      clearInterval(timer);
      await running;
    },
  };
}
