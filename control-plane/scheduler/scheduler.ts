import { sql } from "kysely";
import type { Bus } from "../bus/bus.js";
import { stateSignal } from "../bus/task-events.js";
import type { Db } from "../db/database.js";
import { type AttemptToDispatch, assignmentMessage, dispatchApp } from "../dispatch/assignment.js";
import { newId } from "../ids.js";
import type { Logger } from "../log.js";
import { loadNodeCapacity } from "./capacity.js";
import { startRoundLoop } from "./round-loop.js";
import { type TaskDemand, placeTasks } from "./placement.js";

export interface SchedulerOptions {
  readonly db: Db;
  readonly bus: Bus;
  readonly logger: Logger;
  /** Most tasks considered per round. Default 500. */
  readonly batchSize?: number;
  /** A round also runs this often without a wake-up signal, in case one was lost. Default 1000 ms. */
  readonly tickIntervalMs?: number;
}

export interface Scheduler {
  /** Ask for a round soon; calls while a round runs coalesce into one more round. */
  wake(): void;
  /** One round now; resolves with how many tasks it placed. */
  runRound(): Promise<number>;
  shutdown(): Promise<void>;
}

/** Any constant works; it only has to be the same on every replica. */
export const SCHEDULER_LOCK_KEY = 0x6e677075;

/**
 * Places queued tasks on free GPUs. One round runs at a time across all
 * replicas (a transaction-scoped advisory lock), so placement never double-books
 * a GPU; rounds take many tasks at once, so throughput comes from batching.
 */
export function startScheduler(options: SchedulerOptions): Scheduler {
  const { db, bus, logger } = options;
  const batchSize = options.batchSize ?? 500;
  const log = logger.child({ component: "scheduler" });

  async function runRound(): Promise<number> {
    const dispatch = await db.transaction().execute(async (tx) => {
      await sql`SELECT pg_advisory_xact_lock(${SCHEDULER_LOCK_KEY})`.execute(tx);
      const capacity = await loadNodeCapacity(tx);
      const freeSlots = capacity.reduce((sum, n) => sum + Math.max(0, n.maxConcurrent - n.running), 0);
      if (freeSlots === 0) return [];
      // Pooled apps whose pool has a free slot: the others' tasks cannot start, and reading them
      // would fill the batch ahead of tasks that can.
      const poolsWithRoom = [...new Set(capacity.filter((n) => n.pool?.accepting && n.running < n.maxConcurrent).map((n) => n.pool!.appId))];
      const queued = await tx
        .selectFrom("tasks as t")
        .innerJoin("apps as a", "a.id", "t.app_id")
        .select([
          "t.id",
          "t.input",
          "t.timeout_ms",
          "a.id as app_id",
          "a.name as app_name",
          "a.version as app_version",
          "a.runtime",
          "a.env",
          "a.gpu_count",
          "a.gpu_min_memory_bytes",
          "a.gpu_models",
          "t.workspace_id",
          "t.priority",
          sql<boolean>`a.pool_policy IS NOT NULL`.as("pooled"),
        ])
        .where("t.state", "=", "QUEUED")
        .where((eb) => (poolsWithRoom.length > 0 ? eb.or([eb("a.pool_policy", "is", null), eb("t.app_id", "in", poolsWithRoom)]) : eb("a.pool_policy", "is", null)))
        // Tasks backing off after a retryable failure wait their turn.
        .where((eb) => eb.or([eb("t.not_before", "is", null), eb("t.not_before", "<=", sql<Date>`now()`)]))
        .orderBy("t.priority", "desc")
        .orderBy("t.seq")
        // No more than could start now (with room for backfill past tasks that fit nowhere):
        // reading the whole queue each round would cost more than placing.
        .limit(Math.min(batchSize, Math.max(32, freeSlots * 2)))
        .forUpdate("t")
        .skipLocked()
        .execute();
      if (queued.length === 0) return [];
      const demands: TaskDemand[] = queued.map((t) => ({
        id: t.id,
        appId: t.app_id,
        gpuCount: t.gpu_count,
        minMemoryBytes: t.gpu_min_memory_bytes,
        allowedModels: t.gpu_models.map((m) => m.toLowerCase()),
        pooled: t.pooled,
        workspaceId: t.workspace_id,
        priority: t.priority,
      }));
      const placements = placeTasks(demands, capacity);
      if (placements.length === 0) return [];

      const byTask = new Map(queued.map((t) => [t.id, t]));
      const planned = placements.map((p) => ({ ...p, attemptId: newId("att") }));
      const values = sql.join(planned.map((p) => sql`(${p.taskId}, ${p.attemptId}, ${p.nodeId}, ${JSON.stringify(p.gpuIndices)})`));
      const inserted = await sql<{ id: string; task_id: string; fencing_token: number }>`
        WITH v(task_id, attempt_id, node_id, gpu_indices) AS (VALUES ${values}),
        assigned AS (
          UPDATE tasks SET state = 'ASSIGNED', assigned_at = now(), current_attempt_id = v.attempt_id,
            node_id = v.node_id, gpu_indices = v.gpu_indices::jsonb, attempt_count = attempt_count + 1
          FROM v WHERE tasks.id = v.task_id AND tasks.state = 'QUEUED'
          RETURNING tasks.id, tasks.workspace_id, tasks.app_id
        )
        INSERT INTO attempts (id, task_id, workspace_id, app_id, node_id, fencing_token, gpu_indices, state)
        SELECT v.attempt_id, v.task_id, assigned.workspace_id, assigned.app_id, v.node_id,
          nextval('attempt_fencing_tokens'), v.gpu_indices::jsonb, 'ASSIGNED'
        FROM v JOIN assigned ON assigned.id = v.task_id
        RETURNING id, task_id, fencing_token`.execute(tx);

      const planByTask = new Map(planned.map((p) => [p.taskId, p]));
      return inserted.rows.map((row): [string, AttemptToDispatch] => {
        const t = byTask.get(row.task_id)!;
        const p = planByTask.get(row.task_id)!;
        return [
          p.nodeId,
          {
            taskId: t.id,
            attemptId: row.id,
            fencingToken: Number(row.fencing_token),
            gpuIndices: p.gpuIndices,
            timeoutMs: t.timeout_ms,
            input: t.input,
            app: dispatchApp(t),
          },
        ];
      });
    });
    // Only after the commit: a worker must never run an attempt the database does not have.
    for (const [nodeId, attempt] of dispatch) {
      bus.sendToNode(nodeId, assignmentMessage(attempt));
      bus.publishTaskEvent(attempt.taskId, stateSignal(attempt.taskId));
    }
    if (dispatch.length > 0) log.debug({ placed: dispatch.length }, "tasks placed");
    return dispatch.length;
  }

  const loop = startRoundLoop({
    bus,
    log,
    what: "scheduling round",
    intervalMs: options.tickIntervalMs ?? 1_000,
    // Placed some: there may be more to place (GPUs freed meanwhile); stop at an empty round.
    round: async (stopped) => {
      while ((await runRound()) > 0 && !stopped());
    },
  });

  return { wake: loop.wake, runRound, shutdown: loop.shutdown };
}
