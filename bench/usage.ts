// Metering at scale: load 10 million usage records and measure (1) how fast the
// real write path (recordUsage, in batches, each in its own transaction as the
// finish paths call it) records usage, and (2) how fast a month of hourly
// buckets is summarised for one workspace, from the rollups.
//
// Only a sample goes through the real path (it needs a task and an attempt row
// per record); the rest is generated in SQL with generate_series and added to
// the rollups by the very same statements (rollUp / rollUpByApp) the write path uses.
import { sql } from "kysely";
import { type Db, openDatabase } from "../control-plane/db/database.js";
import { recordUsage, rollUp, rollUpByApp } from "../control-plane/db/usage.js";
import { type GroupBy, summarizeUsage } from "../control-plane/metering/summaries.js";
import { createBenchDatabase } from "./network.js";
import { Scope } from "./scope.js";
import { distribution, r2, type Result } from "./stats.js";

export interface UsageBenchOptions {
  /** Usage records in all. */
  readonly records: number;
  /** Of them, how many go through recordUsage (the real write path). */
  readonly realPathRecords: number;
  /** Attempts per recordUsage call (a finish batch). */
  readonly batch: number;
  /** Summary queries per grouping. */
  readonly queries: number;
}

export const USAGE_DEFAULTS: UsageBenchOptions = { records: 10_000_000, realPathRecords: 200_000, batch: 500, queries: 200 };

const WORKSPACES = 100;
const APPS_PER_WORKSPACE = 5;
const NODES = 50;
/** Records spread over these 90 days; summaries ask for March. */
const FROM = Date.UTC(2026, 0, 1);
const SPAN_MS = 90 * 86_400_000;
const MONTH = { start: new Date("2026-03-01T05:00:00Z"), end: new Date("2026-04-01T04:00:00Z") };
const ZONE = "America/New_York";
/** The heavy workspace: every 5th record is its own (20 %, about 670,000 in March). */
const HEAVY = "ws_000";
const LIGHT = "ws_050";

/** Workspace, app, node, outcome and end time of record i of n, deterministic. */
const shapeSql = (n: number) => sql`
  CASE WHEN i % 5 = 0 THEN 'ws_000' ELSE 'ws_' || lpad((1 + i % 99)::text, 3, '0') END AS ws,
  (i / 7) % ${APPS_PER_WORKSPACE} AS app,
  'node_' || lpad((i % ${NODES})::text, 2, '0') AS node,
  CASE WHEN i % 50 = 1 THEN 'LOST' WHEN i % 20 = 3 THEN 'FAILED' ELSE 'SUCCEEDED' END AS outcome,
  ${FROM}::bigint + (i::bigint * ${SPAN_MS}::bigint / ${n}) AS ended_ms`;


async function setUp(db: Db): Promise<void> {
  await sql`INSERT INTO workspaces (id, name) SELECT 'ws_' || lpad(w::text, 3, '0'), 'bench ' || w FROM generate_series(0, ${WORKSPACES - 1}) w`.execute(db);
  await sql`INSERT INTO apps (id, workspace_id, name, version, runtime, gpu_count, gpu_min_memory_bytes, gpu_models, env, timeout_ms)
    SELECT 'app_' || lpad(w::text, 3, '0') || '_' || a, 'ws_' || lpad(w::text, 3, '0'), 'app-' || a, 1, '{"kind":"builtin","name":"echo"}', 1, 0, '[]', '{}', 600000
    FROM generate_series(0, ${WORKSPACES - 1}) w, generate_series(0, ${APPS_PER_WORKSPACE - 1}) a`.execute(db);
  await sql`INSERT INTO nodes (id, name, state, gpus, runtimes, max_concurrent_tasks)
    SELECT 'node_' || lpad(n::text, 2, '0'), 'node ' || n, 'ONLINE',
      jsonb_build_array(jsonb_build_object('index', 0, 'uuid', 'GPU-' || n, 'memoryTotalBytes', 25769803776, 'driverVersion', '550',
        'pciBusId', '', 'migEnabled', false, 'simulated', true,
        'model', CASE WHEN n % 2 = 0 THEN 'NVIDIA GeForce RTX 3090' ELSE 'NVIDIA A100-SXM4-80GB' END)),
      '["builtin"]', 1
    FROM generate_series(0, ${NODES - 1}) n`.execute(db);
  await sql`INSERT INTO gpu_prices (gpu_model, effective_from, nano_usd_per_gpu_second) VALUES ('NVIDIA A100-SXM4-80GB', '2000-01-01T00:00:00Z', 1100000)`.execute(db);
}

/**
 * Records [from, to) of n, except those in skip (recorded through the real path),
 * generated in SQL and added to the rollups by the write path's own statements.
 */
async function bulkRecords(db: Db, from: number, to: number, n: number, skip: readonly number[]): Promise<void> {
  await sql`
    WITH s AS (SELECT i, ${shapeSql(n)} FROM generate_series(${from}::int, ${to - 1}::int) i WHERE NOT (i = ANY(${[...skip]}::int[]))),
    ins AS (
      INSERT INTO usage_records (attempt_id, task_id, workspace_id, app_id, app_workspace_id, node_id, provider_workspace_id,
        gpu_model, gpu_count, outcome, started_at_ms, ended_at_ms, worker_execution_ms, control_plane_execution_ms,
        disagreement_ms, execution_ms, gpu_ms, price_nano_usd_per_gpu_second, cost_nano_usd, fee_nano_usd,
        provider_share_basis_points, provider_nano_usd)
      SELECT 'att_' || lpad(i::text, 9, '0'), 'tsk_' || i, ws, 'app_' || substr(ws, 4) || '_' || app, ws, node, NULL,
        CASE WHEN substr(node, 6)::int % 2 = 0 THEN 'NVIDIA GeForce RTX 3090' ELSE 'NVIDIA A100-SXM4-80GB' END, 1, outcome,
        ended_ms - 10000, ended_ms, 10000, 10000, 0,
        CASE WHEN outcome = 'LOST' THEN 0 ELSE 10000 END, CASE WHEN outcome = 'LOST' THEN 0 ELSE 10000 END,
        CASE WHEN substr(node, 6)::int % 2 = 0 THEN 366000 ELSE 1100000 END,
        CASE WHEN outcome = 'LOST' THEN 0 WHEN substr(node, 6)::int % 2 = 0 THEN 3660000 ELSE 11000000 END, 0,
        8000, CASE WHEN outcome = 'LOST' THEN 0 WHEN substr(node, 6)::int % 2 = 0 THEN 2928000 ELSE 8800000 END
      FROM s
      RETURNING *
    ), roll AS (${rollUp(sql`ins`)}), roll_by_app AS (${rollUpByApp(sql`ins`)})
    SELECT count(*) FROM ins`.execute(db);
}

async function timeSummaries(db: Db, workspaceId: string, groupBy: GroupBy, queries: number): Promise<Result> {
  const query = () =>
    summarizeUsage(db, { scope: { view: "caller", workspaceId }, ...MONTH, timeZone: ZONE, granularity: "hour", groupBy });
  for (let i = 0; i < 5; i++) await query(); // warm the cache and the plan
  const ms: number[] = [];
  let buckets = 0;
  let attempts = 0n;
  for (let i = 0; i < queries; i++) {
    const t = performance.now();
    const s = await query();
    ms.push(performance.now() - t);
    buckets = s.buckets.length;
    attempts = s.totals.attempts;
  }
  const d = distribution(ms);
  return { workspace: workspaceId, group_by: groupBy, buckets, attempts_in_month: Number(attempts), queries, p50_ms: d.p50, p99_ms: d.p99, max_ms: d.max };
}

export async function runUsage(options: UsageBenchOptions, progress: (line: string) => void): Promise<Result[]> {
  const scope = new Scope();
  try {
    const url = await createBenchDatabase(scope);
    const db = await openDatabase({ kind: "postgres", url, poolSize: 4 });
    scope.defer("close database pool", () => db.destroy());
    await setUp(db);
    const n = options.records;
    const real = Math.min(options.realPathRecords, n);
    // The real path: attempts spread over all of [0, n) so they land among the bulk records.
    const stride = Math.max(1, Math.floor(n / real));
    // Offsets vary within each stride so the sample covers every workspace, node and outcome.
    const realIds = Array.from({ length: real }, (_, k) => k * stride + ((k * 7) % stride));
    progress(`seeding ${real} tasks and attempts for the real write path`);
    for (let k = 0; k < real; k += 20_000) {
      // Contiguous i ranges would cluster in time; seed exactly the strided ids.
      const ids = realIds.slice(k, k + 20_000);
      await sql`
        WITH s AS (SELECT i, ${shapeSql(n)} FROM unnest(${ids}::int[]) i),
        t AS (
          INSERT INTO tasks (id, workspace_id, app_id, app_version, state, input, timeout_ms, created_at, started_at, ended_at, attempt_count)
          SELECT 'tsk_' || i, ws, 'app_' || substr(ws, 4) || '_' || app, 1, 'SUCCEEDED', '{}', 600000,
            to_timestamp((ended_ms - 10000) / 1000.0), to_timestamp((ended_ms - 10000) / 1000.0), to_timestamp(ended_ms / 1000.0), 1
          FROM s
        )
        INSERT INTO attempts (id, task_id, workspace_id, app_id, node_id, fencing_token, gpu_indices, state, created_at, started_at, ended_at,
          worker_started_at_ms, worker_ended_at_ms)
        SELECT 'att_' || lpad(i::text, 9, '0'), 'tsk_' || i, ws, 'app_' || substr(ws, 4) || '_' || app, node, i, '[0]', outcome,
          to_timestamp((ended_ms - 10000) / 1000.0), to_timestamp((ended_ms - 10000) / 1000.0), to_timestamp(ended_ms / 1000.0),
          ended_ms - 10000 + (i % 7), ended_ms - (i % 3)
        FROM s`.execute(db);
    }
    // Statistics as autovacuum would have them on a live database (the write path looks tasks up by key).
    await sql`ANALYZE`.execute(db);
    progress(`recording ${real} usage records through recordUsage, ${options.batch} per transaction`);
    const attemptIds = realIds.map((i) => `att_${String(i).padStart(9, "0")}`);
    const t0 = performance.now();
    let written = 0;
    for (let k = 0; k < attemptIds.length; k += options.batch) {
      const batch = attemptIds.slice(k, k + options.batch);
      written += (await db.transaction().execute((tx) => recordUsage(tx, batch))).length;
    }
    const realS = (performance.now() - t0) / 1000;
    if (written !== real) throw new Error(`recordUsage wrote ${written} records, expected ${real}`);

    progress(`generating the other ${n - real} records in SQL (same rollup statements)`);
    const t1 = performance.now();
    const chunk = 500_000;
    for (let from = 0; from < n; from += chunk) {
      const to = Math.min(n, from + chunk);
      await bulkRecords(db, from, to, n, realIds.filter((i) => i >= from && i < to));
      progress(`  ${to.toLocaleString("en-US")} / ${n.toLocaleString("en-US")} (${Math.round((performance.now() - t1) / 1000)} s)`);
    }
    const bulkS = (performance.now() - t1) / 1000;
    await sql`ANALYZE`.execute(db);

    const counts = await sql<{ records: string; heavy_march: string }>`
      SELECT count(*)::text AS records,
        (SELECT count(*) FROM usage_records WHERE workspace_id = ${HEAVY} AND ended_at_ms >= ${MONTH.start.getTime()} AND ended_at_ms < ${MONTH.end.getTime()})::text AS heavy_march
      FROM usage_records`.execute(db);
    const rollupRows = await sql<{ fine: string; narrow: string }>`
      SELECT (SELECT count(*) FROM usage_rollups WHERE workspace_id = ${HEAVY} AND bucket >= ${MONTH.start} AND bucket < ${MONTH.end})::text AS fine,
        (SELECT count(*) FROM usage_rollups_by_app WHERE workspace_id = ${HEAVY} AND bucket >= ${MONTH.start} AND bucket < ${MONTH.end})::text AS narrow`.execute(db);

    // Detail sums equal summary sums at this size too.
    const summary = await summarizeUsage(db, { scope: { view: "caller", workspaceId: HEAVY }, ...MONTH, timeZone: ZONE, granularity: "hour", groupBy: "none" });
    const detail = await sql<{ n: string; cost: string }>`
      SELECT count(*)::text AS n, sum(cost_nano_usd)::text AS cost FROM usage_records
      WHERE workspace_id = ${HEAVY} AND ended_at_ms >= ${summary.start.getTime()} AND ended_at_ms < ${summary.end.getTime()}`.execute(db);
    const consistent = BigInt(detail.rows[0]!.n) === summary.totals.attempts && BigInt(detail.rows[0]!.cost) === summary.totals.costNanoUsd;

    const results: Result[] = [
      {
        part: "usage",
        variant: "ingestion",
        records: Number(counts.rows[0]!.records),
        real_path_records: real,
        real_path_batch: options.batch,
        real_path_s: r2(realS),
        real_path_records_per_s: Math.round(real / realS),
        bulk_sql_records: n - real,
        bulk_sql_s: r2(bulkS),
        bulk_sql_records_per_s: Math.round((n - real) / bulkS),
        heavy_workspace_records_in_month: Number(counts.rows[0]!.heavy_march),
        heavy_rollup_rows_in_month: Number(rollupRows.rows[0]!.fine),
        heavy_narrow_rollup_rows_in_month: Number(rollupRows.rows[0]!.narrow),
        detail_equals_summary: consistent,
      },
    ];
    for (const [ws, groupBy, queries] of [
      [HEAVY, "none", options.queries],
      [HEAVY, "app", Math.ceil(options.queries / 2)],
      [HEAVY, "outcome", Math.ceil(options.queries / 2)],
      [HEAVY, "node", Math.ceil(options.queries / 10)],
      [LIGHT, "none", options.queries],
    ] as const) {
      progress(`summaries: ${ws} by ${groupBy}`);
      results.push({ part: "usage", variant: `summary ${ws === HEAVY ? "heavy" : "light"} workspace, group ${groupBy}`, ...(await timeSummaries(db, ws, groupBy, queries)) });
    }
    return results;
  } finally {
    await scope.close();
  }
}
