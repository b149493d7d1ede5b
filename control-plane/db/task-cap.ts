import { sql } from "kysely";

/**
 * The GPU model an attempt runs on (its first GPU's), as metering prices it.
 * `at` is the attempts row and `n` its node.
 */
const GPU_MODEL = sql`COALESCE((SELECT g->>'model' FROM jsonb_array_elements(n.gpus) g WHERE g->'index' = at.gpu_indices->0 LIMIT 1), '')`;

/**
 * Execution ms a task's remaining budget buys on this attempt: the cap minus
 * the per-call fee fixed on the task (a success pays it, so the total stays
 * within the cap) and what its earlier attempts were billed, divided by the attempt's price
 * (price × GPUs), rounded down so that the bill never passes the cap. Null when
 * the task has no cap or the attempt costs nothing. Needs `at` (attempts),
 * `t` (tasks) and `n` (nodes) in scope.
 */
export const CAP_MS = sql<number | null>`CASE WHEN t.max_cost_nano_usd IS NULL THEN NULL ELSE (
  SELECT CASE WHEN t.max_cost_nano_usd IS NULL OR p.price IS NULL OR p.price = 0 OR jsonb_array_length(at.gpu_indices) = 0 THEN NULL
    ELSE GREATEST(0, t.max_cost_nano_usd - t.call_fee_nano_usd - COALESCE((SELECT sum(u.cost_nano_usd) FROM usage_records u WHERE u.task_id = at.task_id AND u.attempt_id <> at.id), 0))
      * 1000 / (p.price * jsonb_array_length(at.gpu_indices)) END
  FROM (SELECT (SELECT gp.nano_usd_per_gpu_second FROM gpu_prices gp
    WHERE lower(gp.gpu_model) = lower(${GPU_MODEL}) AND gp.effective_from <= COALESCE(at.started_at, at.created_at)
    ORDER BY gp.effective_from DESC LIMIT 1) AS price) p) END`;
