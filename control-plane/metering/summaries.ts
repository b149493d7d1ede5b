import { type RawBuilder, sql } from "kysely";
import type { Db } from "../db/database.js";
import type { Granularity } from "./usage-window.js";

/** Whose usage: what a workspace called, ran on its nodes, or what its apps served. */
export type UsageScope =
  | { readonly view: "caller"; readonly workspaceId: string }
  /** includeOperatorNodes: also the nodes with no provider (the operator's own). */
  | { readonly view: "provider"; readonly workspaceId: string; readonly includeOperatorNodes: boolean }
  | { readonly view: "author"; readonly workspaceId: string };

export type GroupBy = "none" | "app" | "gpu_model" | "node" | "outcome";

export interface SummaryQuery {
  readonly scope: UsageScope;
  readonly start: Date;
  readonly end: Date;
  readonly timeZone: string;
  readonly granularity: Granularity;
  readonly groupBy: GroupBy;
  readonly appId?: string;
  /** Only these apps (a WIDGET key's). */
  readonly appIds?: readonly string[];
}

/** Exact sums (bigint: money summed over time can pass 2^53 nano-USD). */
export interface UsageSums {
  submitted: bigint;
  attempts: bigint;
  succeeded: bigint;
  failed: bigint;
  cancelled: bigint;
  timedOut: bigint;
  lost: bigint;
  released: bigint;
  gpuMs: bigint;
  costNanoUsd: bigint;
  feeNanoUsd: bigint;
  providerNanoUsd: bigint;
}

export function zeroSums(): UsageSums {
  return { submitted: 0n, attempts: 0n, succeeded: 0n, failed: 0n, cancelled: 0n, timedOut: 0n, lost: 0n, released: 0n, gpuMs: 0n, costNanoUsd: 0n, feeNanoUsd: 0n, providerNanoUsd: 0n };
}

export function addSums(into: UsageSums, add: UsageSums): UsageSums {
  for (const k of Object.keys(into) as Array<keyof UsageSums>) into[k] += add[k];
  return into;
}

export interface SummaryBucket {
  readonly start: Date;
  readonly end: Date;
  /** The zone's UTC offset at the bucket's start, in minutes. */
  readonly offsetMinutes: number;
  readonly totals: UsageSums;
  /** Per group key, in key order (empty without grouping). */
  readonly groups: Array<{ key: string; sums: UsageSums }>;
}

export interface Summary {
  readonly buckets: SummaryBucket[];
  readonly totals: UsageSums;
  /** The range covered: the request's, widened to whole buckets. */
  readonly start: Date;
  readonly end: Date;
}

const SLOT_MS = 15 * 60_000;
/** How far beyond the requested range a bucket of each granularity can reach (DST included). */
const WIDEN_MS: Readonly<Record<Granularity, number>> = { hour: 2 * 3_600_000, day: 2 * 86_400_000, month: 32 * 86_400_000 };

const GROUP_COLUMN: Record<GroupBy, RawBuilder<string>> = {
  none: sql<string>`''`,
  app: sql<string>`app_id`,
  gpu_model: sql<string>`gpu_model`,
  node: sql<string>`node_id`,
  outcome: sql<string>`outcome`,
};

/** The start of the local hour, day or month that a 15-minute bucket (a UTC instant) falls in. */
function localBucketStart(column: RawBuilder<unknown>, granularity: Granularity, zone: string): RawBuilder<Date> {
  // Hours by instant, not local wall time: the repeated hour of a DST end stays two buckets.
  // Every offset in use is a multiple of 15 minutes, so the local minute is 0, 15, 30 or 45.
  if (granularity === "hour") return sql<Date>`(${column} - make_interval(mins => extract(minute FROM ${column} AT TIME ZONE ${zone})::int))`;
  return sql<Date>`(date_trunc(${granularity}, ${column} AT TIME ZONE ${zone}) AT TIME ZONE ${zone})`;
}

/**
 * Every bucket of the zone that overlaps [start, end), empty ones included,
 * with its end: local hours from the 15-minute grid (so a DST day has 23 or 25),
 * local days and months from the zone's calendar.
 */
function bucketsSql(q: SummaryQuery): RawBuilder<{ start: Date; end: Date; offset_minutes: number }> {
  const zone = q.timeZone;
  const starts =
    q.granularity === "hour"
      ? sql`SELECT DISTINCT ${localBucketStart(sql`s`, "hour", zone)} AS start
          FROM generate_series(date_bin('15 minutes', ${q.start}::timestamptz, timestamptz '2000-01-01T00:00:00Z'), ${q.end}::timestamptz + interval '1 hour', interval '15 minutes') s`
      : sql`SELECT l AT TIME ZONE ${zone} AS start
          FROM generate_series(date_trunc(${q.granularity}, ${q.start}::timestamptz AT TIME ZONE ${zone}),
            date_trunc(${q.granularity}, ${q.end}::timestamptz AT TIME ZONE ${zone}) + ${`1 ${q.granularity}`}::interval, ${`1 ${q.granularity}`}::interval) l`;
  return sql`
    SELECT start, "end", (extract(epoch FROM (start AT TIME ZONE ${zone}) - (start AT TIME ZONE 'UTC')) / 60)::int AS offset_minutes
    FROM (SELECT start, lead(start) OVER (ORDER BY start) AS "end" FROM (${starts}) g) b
    WHERE "end" IS NOT NULL AND "end" > ${q.start}::timestamptz AND start < ${q.end}::timestamptz
    ORDER BY start`;
}

function scopeSql(scope: UsageScope): RawBuilder<boolean> {
  switch (scope.view) {
    case "caller":
      return sql<boolean>`workspace_id = ${scope.workspaceId}`;
    case "author":
      return sql<boolean>`app_workspace_id = ${scope.workspaceId}`;
    case "provider":
      return scope.includeOperatorNodes
        ? sql<boolean>`(provider_workspace_id = ${scope.workspaceId} OR provider_workspace_id IS NULL)`
        : sql<boolean>`provider_workspace_id = ${scope.workspaceId}`;
  }
}

interface SumsRow {
  start: Date;
  key: string | null;
  /** False: counts only toward the bucket's totals (submissions in a grouping they have no key for). */
  grouped: boolean | null;
  submitted: string;
  attempts: string;
  succeeded: string;
  failed: string;
  cancelled: string;
  timed_out: string;
  lost: string;
  released: string;
  gpu_ms: string;
  cost: string;
  fee: string;
  provider: string;
}

type BucketRow = { start: Date; end: Date; offset_minutes: number };

/**
 * Sums usage per bucket (and group) from the 15-minute rollups, never from the
 * records: the work depends on the buckets in range, not on how much usage there was.
 */
export async function summarizeUsage(db: Db, q: SummaryQuery): Promise<Summary> {
  // Rollups are read over a range a little wider than any bucket can reach; rows outside the
  // buckets that overlap the request are dropped when the answer is assembled.
  const margin = WIDEN_MS[q.granularity];
  const from = new Date(Math.floor(q.start.getTime() / SLOT_MS) * SLOT_MS - margin);
  const to = new Date(Math.ceil(q.end.getTime() / SLOT_MS) * SLOT_MS + margin);
  const rows = rowsSql(q, from, to);
  if (q.granularity === "hour") {
    // One statement: every 15-minute slot of the range with its local hour (the time-zone arithmetic
    // runs once per slot, not once per rollup row), joined to the rollup rows of that slot.
    const result = await sql<SumsRow & { offset_minutes: number }>`
      WITH u AS (${rows}), slots AS (
        SELECT s AS slot, ${localBucketStart(sql`s`, "hour", q.timeZone)} AS start,
          (extract(epoch FROM (s AT TIME ZONE ${q.timeZone}) - (s AT TIME ZONE 'UTC')) / 60)::int AS offset_minutes
        FROM generate_series(${from}::timestamptz, ${to}::timestamptz - interval '15 minutes', interval '15 minutes') s
      )
      SELECT slots.start, min(slots.offset_minutes) FILTER (WHERE slots.slot = slots.start) AS offset_minutes, u.key, u.grouped, ${SUMS}
      FROM slots LEFT JOIN u ON u.bucket = slots.slot
      GROUP BY slots.start, u.key, u.grouped
      ORDER BY slots.start`.execute(db);
    const starts: Array<{ start: Date; offset: number }> = [];
    for (const r of result.rows) {
      const prev = starts[starts.length - 1];
      if (!prev || prev.start.getTime() !== r.start.getTime()) starts.push({ start: r.start, offset: r.offset_minutes });
      else if (prev.offset === null) prev.offset = r.offset_minutes;
    }
    const buckets: BucketRow[] = [];
    for (let i = 0; i + 1 < starts.length; i++) {
      const b = { start: starts[i]!.start, end: starts[i + 1]!.start, offset_minutes: starts[i]!.offset ?? 0 };
      if (b.end.getTime() > q.start.getTime() && b.start.getTime() < q.end.getTime()) buckets.push(b);
    }
    return assemble(q, buckets, result.rows);
  }
  const [buckets, sums] = await Promise.all([
    bucketsSql(q).execute(db),
    sql<SumsRow>`WITH u AS (${rows}) SELECT ${localBucketStart(sql`bucket`, q.granularity, q.timeZone)} AS start, key, grouped, ${SUMS} FROM u GROUP BY 1, 2, 3`.execute(db),
  ]);
  return assemble(q, buckets.rows, sums.rows);
}

const SUMS = sql`sum(submitted)::text AS submitted, sum(attempts)::text AS attempts, sum(succeeded)::text AS succeeded,
  sum(failed)::text AS failed, sum(cancelled)::text AS cancelled, sum(timed_out)::text AS timed_out, sum(lost)::text AS lost,
  sum(released)::text AS released, sum(gpu_ms)::text AS gpu_ms, sum(cost)::text AS cost, sum(fee)::text AS fee, sum(provider)::text AS provider`;

/**
 * The rows to sum, per 15-minute bucket and group key: usage from the narrow
 * rollup when it has what is asked (the caller's totals or apps), else from the
 * full one; the caller's submissions beside them. A submission has no GPU model,
 * node or outcome yet: in those groupings it counts toward the totals only
 * (grouped = false), so a range's totals never depend on the grouping.
 */
function rowsSql(q: SummaryQuery, from: Date, to: Date): RawBuilder<unknown> {
  const onlyApps = q.appIds ? (q.appIds.length > 0 ? sql`AND app_id IN (${sql.join([...q.appIds])})` : sql`AND false`) : sql``;
  const appFilter = q.appId ? sql`AND app_id = ${q.appId} ${onlyApps}` : onlyApps;
  const range = sql`bucket >= ${from} AND bucket < ${to} ${appFilter}`;
  const key = GROUP_COLUMN[q.groupBy];
  const narrow = q.groupBy === "none" || q.groupBy === "app";
  const count = (outcome: string) => sql`CASE WHEN outcome = ${outcome} THEN attempts ELSE 0 END`;
  const usage =
    narrow && q.scope.view === "caller"
      ? sql`SELECT bucket, ${key} AS key, true AS grouped, 0 AS submitted, attempts, succeeded, failed, cancelled, timed_out, lost, released,
          gpu_ms, cost_nano_usd AS cost, fee_nano_usd AS fee, provider_nano_usd AS provider
        FROM usage_rollups_by_app WHERE ${scopeSql(q.scope)} AND ${range}`
      : sql`SELECT bucket, ${key} AS key, true AS grouped, 0 AS submitted, attempts, ${count("SUCCEEDED")} AS succeeded, ${count("FAILED")} AS failed,
          ${count("CANCELLED")} AS cancelled, ${count("TIMED_OUT")} AS timed_out, ${count("LOST")} AS lost, ${count("RELEASED")} AS released,
          gpu_ms, cost_nano_usd AS cost, fee_nano_usd AS fee, provider_nano_usd AS provider
        FROM usage_rollups WHERE ${scopeSql(q.scope)} AND ${range}`;
  if (q.scope.view !== "caller") return usage;
  return sql`${usage}
    UNION ALL
    SELECT bucket, ${narrow ? key : sql`''`} AS key, ${narrow ? sql`true` : sql`false`} AS grouped, submitted, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
    FROM task_submissions WHERE workspace_id = ${q.scope.workspaceId} AND ${range}`;
}

/** The answer: every bucket, its groups in key order, totals; rows outside the buckets are dropped. */
function assemble(q: SummaryQuery, buckets: readonly BucketRow[], rows: readonly SumsRow[]): Summary {
  const first = buckets[0];
  const last = buckets[buckets.length - 1];
  if (!first || !last) return { buckets: [], totals: zeroSums(), start: q.start, end: q.end };
  const byBucket = new Map<number, Map<string, UsageSums>>(buckets.map((b) => [b.start.getTime(), new Map()]));
  // Sums that count toward a bucket's totals but belong to no group.
  const ungrouped = new Map<number, UsageSums>();
  for (const r of rows) {
    if (r.key === null) continue; // an empty slot
    const groups = byBucket.get(r.start.getTime());
    if (!groups) continue; // in the margin, outside the covered range
    let g = r.grouped ? groups.get(r.key) : ungrouped.get(r.start.getTime());
    if (!g) {
      g = zeroSums();
      if (r.grouped) groups.set(r.key, g);
      else ungrouped.set(r.start.getTime(), g);
    }
    g.submitted += BigInt(r.submitted);
    g.attempts += BigInt(r.attempts);
    g.succeeded += BigInt(r.succeeded);
    g.failed += BigInt(r.failed);
    g.cancelled += BigInt(r.cancelled);
    g.timedOut += BigInt(r.timed_out);
    g.lost += BigInt(r.lost);
    g.released += BigInt(r.released);
    g.gpuMs += BigInt(r.gpu_ms);
    g.costNanoUsd += BigInt(r.cost);
    g.feeNanoUsd += BigInt(r.fee);
    g.providerNanoUsd += BigInt(r.provider);
  }
  const totals = zeroSums();
  const out = buckets.map((b): SummaryBucket => {
    const groups = [...byBucket.get(b.start.getTime())!.entries()].sort(([a], [c]) => (a < c ? -1 : a > c ? 1 : 0)).map(([key, sums]) => ({ key, sums }));
    const bucketTotals = groups.reduce((acc, g) => addSums(acc, g.sums), zeroSums());
    const extra = ungrouped.get(b.start.getTime());
    if (extra) addSums(bucketTotals, extra);
    addSums(totals, bucketTotals);
    return { start: b.start, end: b.end, offsetMinutes: b.offset_minutes, totals: bucketTotals, groups: q.groupBy === "none" ? [] : groups };
  });
  return { buckets: out, totals, start: first.start, end: last.end };
}
