import { sql } from "kysely";
import type { Bus } from "../bus/bus.js";
import { stateSignal } from "../bus/task-events.js";
import type { Db } from "../db/database.js";
import { endCappedAttempts } from "../db/spend-caps.js";
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
  /** This replica's id, kept alive in control_planes while the monitor runs. */
  readonly replicaId: string;
  /**
   * A node whose control-plane replica died (or that no replica watched, before this one
   * started) is given this long to reconnect before its silence counts. It covers the
   * worker's reconnect backoff (at most 10 s, with jitter). Default 15000 ms.
   */
  readonly orphanGraceMs?: number;
}

/** A replica not seen for this long is taken as gone. */
const REPLICA_GONE_SECS = 3;

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
  const orphanGraceSecs = (options.orphanGraceMs ?? 15_000) / 1000;
  let running: Promise<string[]> | undefined;
  let presenceAt = 0;

  async function check(): Promise<string[]> {
    const moved: string[] = [];
    // Presence once a second is plenty against the 3 s after which a replica counts as gone.
    if (Date.now() - presenceAt >= 1_000) {
      await sql`
        INSERT INTO control_planes (id) VALUES (${options.replicaId})
        ON CONFLICT (id) DO UPDATE SET last_seen_at = now()`.execute(db);
      presenceAt = Date.now();
    }
    // Silence counts only while a live replica listens: the node's own gateway is alive and hears
    // nothing, or its gateway died long enough ago (and this replica has run long enough) that the
    // worker would have reconnected by now if it could.
    const lostNodes = await sql<{ id: string }>`
      WITH live AS (SELECT id, started_at FROM control_planes WHERE last_seen_at > now() - make_interval(secs => ${REPLICA_GONE_SECS})),
      watching_since AS (SELECT min(started_at) AS t FROM live)
      UPDATE nodes SET state = 'LOST', gateway_id = NULL
      WHERE state IN ('ONLINE', 'DRAINING') AND last_heartbeat_at < now() - make_interval(secs => ${lostAfterSecs})
        AND (
          gateway_id IN (SELECT id FROM live)
          OR (
            last_heartbeat_at < now() - make_interval(secs => ${orphanGraceSecs})
            AND (SELECT t FROM watching_since) < now() - make_interval(secs => ${orphanGraceSecs})
          )
        )
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
    for (const t of await endCappedAttempts(db)) {
      bus.sendToNode(t.nodeId, cancelMessage(t.taskId, t.attemptId, "the task's spend cap was reached"));
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
      // A clean stop: the nodes this replica held will reconnect elsewhere, judged by their own replica.
      await db.deleteFrom("control_planes").where("id", "=", options.replicaId).execute().catch(() => {});
    },
  };
}
