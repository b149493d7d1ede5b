import { sql } from "kysely";
import type { Bus } from "../bus/bus.js";
import { stateSignal } from "../bus/task-events.js";
import type { Db } from "../db/database.js";
import { requeueLostAttempts } from "../db/tasks.js";
import type { Logger } from "../log.js";

export interface NodeMonitorOptions {
  readonly db: Db;
  readonly bus: Bus;
  readonly logger: Logger;
  /** A node silent for this long is lost and its attempts go back to the queue. Default 3000 ms. */
  readonly lostAfterMs?: number;
  /** How often to look. Default 500 ms. */
  readonly checkIntervalMs?: number;
}

export interface NodeMonitor {
  /** One check now; resolves with the tasks it put back in the queue. */
  check(): Promise<string[]>;
  shutdown(): Promise<void>;
}

/**
 * Declares nodes lost when their heartbeats stop, and moves their attempts'
 * tasks back to the queue so they run elsewhere. Safe on every replica at
 * once: each statement only acts on rows still in the state it expects.
 */
export function startNodeMonitor(options: NodeMonitorOptions): NodeMonitor {
  const { db, bus, logger } = options;
  const log = logger.child({ component: "monitor" });
  const lostAfterSecs = (options.lostAfterMs ?? 3_000) / 1000;
  let running: Promise<string[]> | undefined;

  async function check(): Promise<string[]> {
    const lostNodes = await sql<{ id: string }>`
      UPDATE nodes SET state = 'LOST', gateway_id = NULL
      WHERE state IN ('ONLINE', 'DRAINING') AND last_heartbeat_at < now() - make_interval(secs => ${lostAfterSecs})
      RETURNING id`.execute(db);
    for (const n of lostNodes.rows) log.warn({ node: n.id }, "node lost: no heartbeat");
    // Attempts on nodes that are gone (lost, or disconnected past the grace period).
    const orphaned = await sql<{ id: string }>`
      SELECT at.id FROM attempts at JOIN nodes n ON n.id = at.node_id
      WHERE at.ended_at IS NULL AND n.state IN ('LOST', 'OFFLINE')
        AND (n.last_heartbeat_at IS NULL OR n.last_heartbeat_at < now() - make_interval(secs => ${lostAfterSecs}))
      LIMIT 1000`.execute(db);
    if (orphaned.rows.length === 0) return [];
    const requeued = await requeueLostAttempts(
      db,
      orphaned.rows.map((r) => r.id),
      "the node stopped responding",
    );
    for (const id of requeued) bus.publishTaskEvent(id, stateSignal(id));
    if (requeued.length > 0) {
      log.warn({ tasks: requeued.length }, "tasks re-queued from lost nodes");
      bus.wakeScheduler();
    }
    return requeued;
  }

  const timer = setInterval(() => {
    if (running) return;
    running = check()
      .catch((err) => {
        log.warn({ err }, "node check failed");
        return [];
      })
      .finally(() => (running = undefined));
  }, options.checkIntervalMs ?? 500);
  timer.unref();

  return {
    check,
    async shutdown() {
      clearInterval(timer);
      await running;
    },
  };
}
