import { type Kysely, type RawBuilder, sql } from "kysely";
import type { Database } from "./schema.js";
import { CAP_MS } from "./task-cap.js";

/**
 * Worker-measured execution time is believed when it is within this many ms of
 * the control plane's own (RUNNING seen → finish seen), and then only up to the
 * control plane's: a worker may report less (its clock starts after the network
 * hop), never more. Beyond the tolerance the control plane's time is billed and
 * the disagreement stays on the record.
 */
export const CLOCK_TOLERANCE_MS = 500;

/** A usage record as written, for callers that act on fresh usage (receipts, spend caps). */
export interface RecordedUsage {
  readonly attemptId: string;
  readonly taskId: string;
  readonly workspaceId: string;
  readonly outcome: string;
  readonly executionMs: number;
  readonly gpuMs: number;
  readonly costNanoUsd: number;
  readonly feeNanoUsd: number;
}

/**
 * Writes the usage record of each given ended attempt, and adds it to the
 * 15-minute rollups, in one statement. Call it inside the transaction that
 * ends the attempts, so usage and the attempt's end commit together. An attempt
 * already recorded is skipped (a replayed report counts once); one not ended is
 * ignored. Returns the records written now.
 *
 * Billing rules (README "Billing policy"): execution time only, never queue or
 * cold start; LOST and RELEASED attempts bill nothing; a TIMED_OUT attempt ended
 * at its timeout, so it bills exactly that; the price is the one in force for
 * the GPU model when the attempt started; cost = gpu_ms × price / 1000 rounded
 * to the nearest nano-USD (half up); the per-call fee fixed on the task at
 * submit applies to a successful call from a workspace other than the author's; providers get
 * floor(cost × share / 10000).
 */
export async function recordUsage(db: Kysely<Database>, attemptIds: readonly string[]): Promise<RecordedUsage[]> {
  if (attemptIds.length === 0) return [];
  const result = await recordUsageStatement(attemptIds).execute(db);
  for (const r of result.rows) if (r.unpriced) reportUnpriced(r.gpu_model);
  return result.rows.map((r) => ({
    attemptId: r.attempt_id,
    taskId: r.task_id,
    workspaceId: r.workspace_id,
    outcome: r.outcome,
    executionMs: Number(r.execution_ms),
    gpuMs: Number(r.gpu_ms),
    costNanoUsd: Number(r.cost_nano_usd),
    feeNanoUsd: Number(r.fee_nano_usd),
  }));
}

type UnpricedListener = (gpuModel: string) => void;
const unpricedListeners = new Set<UnpricedListener>();
const reportedUnpriced = new Set<string>();

/**
 * Calls `listener` the first time this process records billed usage of a GPU
 * model that has no price in the book (billed 0: see README "Billing policy"),
 * once per model. Returns a function that removes the listener.
 */
export function onUnpricedGpuModel(listener: UnpricedListener): () => void {
  unpricedListeners.add(listener);
  return () => unpricedListeners.delete(listener);
}

function reportUnpriced(gpuModel: string): void {
  if (reportedUnpriced.has(gpuModel)) return;
  reportedUnpriced.add(gpuModel);
  for (const listener of unpricedListeners) listener(gpuModel);
}

function recordUsageStatement(attemptIds: readonly string[]) {
  return sql<{
    gpu_model: string;
    unpriced: boolean;
    attempt_id: string;
    task_id: string;
    workspace_id: string;
    outcome: string;
    execution_ms: number;
    gpu_ms: number;
    cost_nano_usd: number;
    fee_nano_usd: number;
  }>`
    -- MATERIALIZED: computed once per attempt. Inlined, the later steps would copy the cap and price
    -- expressions into every place that uses them (dozens of subplans per row: 40x slower).
    WITH ended AS MATERIALIZED (
      SELECT at.id, at.task_id, at.workspace_id, at.app_id, at.node_id, at.state AS outcome,
        jsonb_array_length(at.gpu_indices) AS gpu_count,
        COALESCE(at.started_at, at.created_at) AS price_at,
        a.workspace_id AS app_workspace_id, COALESCE(t.call_fee_nano_usd, 0) AS call_fee_nano_usd,
        n.provider_workspace_id,
        COALESCE((SELECT g->>'model' FROM jsonb_array_elements(n.gpus) g WHERE g->'index' = at.gpu_indices->0 LIMIT 1), '') AS gpu_model,
        -- Without a RUNNING report, the window the control plane saw opens when the attempt got its GPUs.
        (EXTRACT(EPOCH FROM COALESCE(at.started_at, at.created_at)) * 1000)::bigint AS started_ms,
        (EXTRACT(EPOCH FROM at.ended_at) * 1000)::bigint AS ended_ms,
        (EXTRACT(EPOCH FROM at.ended_at - at.started_at) * 1000)::bigint AS cp_ms,
        -- GREATEST ignores NULLs: keep "no worker report" NULL.
        CASE WHEN at.worker_ended_at_ms IS NOT NULL THEN GREATEST(0, at.worker_ended_at_ms - at.worker_started_at_ms) END AS worker_ms,
        -- Without a RUNNING report the control plane only knows how long the attempt held its GPUs.
        (EXTRACT(EPOCH FROM at.ended_at - at.created_at) * 1000)::bigint AS held_ms,
        -- A task's spend cap bounds what an attempt may bill, whoever ended it (see spend-caps.ts).
        ${CAP_MS}::bigint AS cap_ms
      FROM attempts at
      JOIN apps a ON a.id = at.app_id
      LEFT JOIN nodes n ON n.id = at.node_id
      -- A lookup per attempt by primary key (OFFSET 0 keeps the planner from turning it into a scan of all tasks).
      LEFT JOIN LATERAL (SELECT tasks.max_cost_nano_usd, tasks.call_fee_nano_usd FROM tasks WHERE tasks.id = at.task_id OFFSET 0) t ON true
      WHERE at.id IN (${sql.join([...attemptIds])}) AND at.ended_at IS NOT NULL
    ), billed AS (
      SELECT e.*, e.worker_ms - e.cp_ms AS disagreement_ms,
        CASE
          WHEN e.outcome IN ('LOST', 'RELEASED') THEN 0
          WHEN e.cp_ms IS NULL THEN LEAST(COALESCE(e.worker_ms, 0), GREATEST(0, e.held_ms))
          WHEN e.worker_ms IS NULL OR abs(e.worker_ms - e.cp_ms) > ${CLOCK_TOLERANCE_MS} THEN GREATEST(0, e.cp_ms)
          -- Clamped into the control plane's window: a worker's extra milliseconds are never billed.
          ELSE GREATEST(0, LEAST(e.worker_ms, e.cp_ms))
        END AS measured_ms,
        COALESCE((
          SELECT p.nano_usd_per_gpu_second FROM gpu_prices p
          WHERE lower(p.gpu_model) = lower(e.gpu_model) AND p.effective_from <= e.price_at
          ORDER BY p.effective_from DESC LIMIT 1
        ), 0) AS price,
        CASE WHEN e.outcome = 'SUCCEEDED' AND e.workspace_id <> e.app_workspace_id THEN e.call_fee_nano_usd ELSE 0 END AS fee,
        (SELECT provider_share_basis_points FROM billing_settings) AS share
      FROM ended e
    ), capped AS MATERIALIZED (
      SELECT b.*, CASE WHEN b.cap_ms IS NULL THEN b.measured_ms ELSE LEAST(b.measured_ms, b.cap_ms) END AS execution_ms FROM billed b
    ), priced AS (
      SELECT b.*, b.execution_ms * b.gpu_count AS gpu_ms,
        round(b.execution_ms::numeric * b.gpu_count * b.price / 1000)::bigint AS cost
      FROM capped b
    ), ins AS (
      INSERT INTO usage_records (attempt_id, task_id, workspace_id, app_id, app_workspace_id, node_id, provider_workspace_id,
        gpu_model, gpu_count, outcome, started_at_ms, ended_at_ms, worker_execution_ms, control_plane_execution_ms,
        disagreement_ms, execution_ms, gpu_ms, price_nano_usd_per_gpu_second, cost_nano_usd, fee_nano_usd,
        provider_share_basis_points, provider_nano_usd)
      SELECT id, task_id, workspace_id, app_id, app_workspace_id, node_id, provider_workspace_id,
        gpu_model, gpu_count, outcome, started_ms, ended_ms, worker_ms, cp_ms,
        disagreement_ms, execution_ms, gpu_ms, price, cost, fee,
        share, (cost * share / 10000)::bigint
      FROM priced
      ON CONFLICT (attempt_id) DO NOTHING
      RETURNING *
    ), roll AS (${rollUp(sql`ins`)}), roll_by_app AS (${rollUpByApp(sql`ins`)})
    SELECT attempt_id, task_id, workspace_id, outcome, execution_ms, gpu_ms, cost_nano_usd, fee_nano_usd, gpu_model,
      -- Billed time at price 0 because the book has no price for the model (not a price of 0 set on purpose).
      CASE WHEN gpu_ms > 0 AND price_nano_usd_per_gpu_second = 0
        THEN NOT EXISTS (SELECT 1 FROM gpu_prices p WHERE lower(p.gpu_model) = lower(ins.gpu_model)) ELSE false END AS unpriced
    FROM ins`;
}

/**
 * Adds usage records (a relation with usage_records' columns, e.g. the RETURNING
 * of their insert) to the 15-minute rollups. The rows are summed first and
 * upserted in key order: one lock order for every writer, so two batches
 * touching the same rows cannot deadlock.
 */
export function rollUp(records: RawBuilder<unknown>): RawBuilder<unknown> {
  return sql`
    INSERT INTO usage_rollups (workspace_id, bucket, app_id, gpu_model, node_id, outcome, app_workspace_id, provider_workspace_id,
      attempts, gpu_ms, cost_nano_usd, fee_nano_usd, provider_nano_usd)
    SELECT workspace_id, ${usageBucket(sql`to_timestamp(ended_at_ms / 1000.0)`)}, app_id, gpu_model, node_id, outcome,
      min(app_workspace_id), min(provider_workspace_id), count(*), sum(gpu_ms), sum(cost_nano_usd), sum(fee_nano_usd), sum(provider_nano_usd)
    FROM ${records} r GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6
    ON CONFLICT (workspace_id, bucket, app_id, gpu_model, node_id, outcome) DO UPDATE SET ${addSums("usage_rollups")}`;
}

/** The same for usage_rollups_by_app: per app, outcomes as counts. */
export function rollUpByApp(records: RawBuilder<unknown>): RawBuilder<unknown> {
  const count = (outcome: string) => sql`count(*) FILTER (WHERE outcome = ${outcome})`;
  const t = sql.table("usage_rollups_by_app");
  const add = (column: string) => sql`${sql.ref(column)} = ${t}.${sql.ref(column)} + excluded.${sql.ref(column)}`;
  return sql`
    INSERT INTO usage_rollups_by_app (workspace_id, bucket, app_id, attempts, succeeded, failed, cancelled, timed_out, lost, released,
      gpu_ms, cost_nano_usd, fee_nano_usd, provider_nano_usd)
    SELECT workspace_id, ${usageBucket(sql`to_timestamp(ended_at_ms / 1000.0)`)}, app_id, count(*),
      ${count("SUCCEEDED")}, ${count("FAILED")}, ${count("CANCELLED")}, ${count("TIMED_OUT")}, ${count("LOST")}, ${count("RELEASED")},
      sum(gpu_ms), sum(cost_nano_usd), sum(fee_nano_usd), sum(provider_nano_usd)
    FROM ${records} r GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (workspace_id, bucket, app_id) DO UPDATE SET
      ${sql.join(["attempts", "succeeded", "failed", "cancelled", "timed_out", "lost", "released", "gpu_ms", "cost_nano_usd", "fee_nano_usd", "provider_nano_usd"].map(add))}`;
}

function addSums(table: string): RawBuilder<unknown> {
  const t = sql.table(table);
  return sql`attempts = ${t}.attempts + excluded.attempts, gpu_ms = ${t}.gpu_ms + excluded.gpu_ms,
    cost_nano_usd = ${t}.cost_nano_usd + excluded.cost_nano_usd, fee_nano_usd = ${t}.fee_nano_usd + excluded.fee_nano_usd,
    provider_nano_usd = ${t}.provider_nano_usd + excluded.provider_nano_usd`;
}

/** The 15-minute UTC bucket a timestamptz expression falls in. */
export function usageBucket(timestamp: RawBuilder<unknown>): RawBuilder<Date> {
  return sql<Date>`date_bin('15 minutes', ${timestamp}, timestamptz '2000-01-01T00:00:00Z')`;
}
