import { sql } from "kysely";
import type { Db } from "./database.js";
import { endAttempts } from "./tasks.js";
import { CAP_MS } from "./task-cap.js";

/**
 * The per-task spend cap, enforced like the execution timeout: a running
 * attempt whose task's budget is spent ends CANCELLED at the moment the cap was
 * reached (started + cap ms), billed exactly up to it, and so does its task.
 * Returns what ended, so the workers can be told to stop.
 */
export async function endCappedAttempts(db: Db): Promise<Array<{ taskId: string; attemptId: string; nodeId: string }>> {
  const statement = sql<{ task_id: string | null; attempt_id: string; node_id: string }>`
    WITH capped AS (
      SELECT at.id, t.max_cost_nano_usd, ${CAP_MS}::bigint AS cap_ms
      FROM attempts at
      JOIN tasks t ON t.current_attempt_id = at.id
      LEFT JOIN nodes n ON n.id = at.node_id
      WHERE at.ended_at IS NULL AND at.state = 'RUNNING' AND t.state = 'RUNNING' AND t.max_cost_nano_usd IS NOT NULL
    ), late AS (
      SELECT c.* FROM capped c JOIN attempts at ON at.id = c.id
      WHERE c.cap_ms IS NOT NULL AND at.started_at + make_interval(secs => c.cap_ms / 1000.0) < now()
      LIMIT 500
    ), a AS (
      UPDATE attempts SET state = 'CANCELLED',
        ended_at = attempts.started_at + make_interval(secs => late.cap_ms / 1000.0),
        error = 'spend cap of ' || trim_scale(late.max_cost_nano_usd::numeric / 1000000000) || ' USD reached',
        gpu_ms = late.cap_ms * jsonb_array_length(attempts.gpu_indices)
      FROM late WHERE attempts.id = late.id AND attempts.ended_at IS NULL
      RETURNING attempts.id, attempts.task_id, attempts.node_id, attempts.gpu_ms, attempts.ended_at, attempts.error, late.cap_ms
    ), t AS (
      UPDATE tasks SET state = 'CANCELLED', ended_at = a.ended_at, error = a.error, execution_ms = a.cap_ms, gpu_ms = a.gpu_ms
      FROM a WHERE tasks.id = a.task_id AND tasks.current_attempt_id = a.id AND tasks.state = 'RUNNING'
      RETURNING tasks.id
    )
    SELECT t.id AS task_id, a.id AS attempt_id, a.node_id FROM a LEFT JOIN t ON t.id = a.task_id`;
  const rows = await endAttempts(db, statement, (r) => r.attempt_id);
  return rows.flatMap((r) => (r.task_id ? [{ taskId: r.task_id, attemptId: r.attempt_id, nodeId: r.node_id }] : []));
}
