import { sql } from "kysely";
import { newId } from "../ids.js";
import type { Db } from "./database.js";
import type { PoolPolicyRow, RuntimeRow } from "./schema.js";

/** An app the autoscaler looks after: it has a pool policy, or members left from one. */
export interface PooledAppRow {
  readonly id: string;
  readonly workspace_id: string;
  readonly name: string;
  readonly version: number;
  readonly runtime: RuntimeRow;
  readonly env: Record<string, string>;
  readonly gpu_count: number;
  readonly gpu_min_memory_bytes: number;
  readonly gpu_models: string[];
  readonly pool_policy: PoolPolicyRow | null;
}

export interface MemberRow {
  readonly node_id: string;
  readonly node_name: string;
  readonly app_id: string;
  readonly state: "cold_starting" | "warm" | "releasing";
  readonly since: Date;
  readonly last_busy_at: Date;
  /** Time since the node last ran a task of the app, by the database's clock. */
  readonly idle_ms: number;
  /** Time since WarmApp was last sent. */
  readonly warm_sent_ms: number;
  readonly gpu_indices: number[];
  readonly cold_start_ms: number;
  readonly online: boolean;
  /** The node reports a ready instance of the app (heartbeat). */
  readonly warm_on_node: boolean;
  /** The app's tasks running on the node now. */
  readonly running: number;
}

export interface AppLoad {
  readonly queued: number;
  /** How long the oldest waiting task has waited, by the database's clock. */
  readonly oldestWaitMs: number | undefined;
  readonly running: number;
  /** Nodes outside the pool running the app's tasks. */
  readonly outsideNodes: number;
  readonly recentFinished: number;
  readonly recentFailed: number;
}

/** The window over which failures hold scale-up. */
export const RECENT_FAILURE_WINDOW_MS = 60_000;

export async function loadPooledApps(db: Db, appIds?: readonly string[]): Promise<PooledAppRow[]> {
  let query = db
    .selectFrom("apps")
    .select(["id", "workspace_id", "name", "version", "runtime", "env", "gpu_count", "gpu_min_memory_bytes", "gpu_models", "pool_policy"]);
  query = appIds
    ? query.where("id", "in", appIds.length > 0 ? [...appIds] : [""])
    : query.where((eb) => eb.or([eb("pool_policy", "is not", null), eb("id", "in", eb.selectFrom("pool_members").select("app_id"))]));
  return (await query.execute()) as PooledAppRow[];
}

/** Members of the given apps' pools, with their node's liveness and what runs there. */
export async function loadMembers(db: Db, appIds: readonly string[]): Promise<MemberRow[]> {
  if (appIds.length === 0) return [];
  const rows = await sql<MemberRow>`
    SELECT pm.node_id, n.name AS node_name, pm.app_id, pm.state, pm.since, pm.last_busy_at,
      (extract(epoch FROM now() - pm.last_busy_at) * 1000)::float8 AS idle_ms,
      (extract(epoch FROM now() - pm.warm_sent_at) * 1000)::float8 AS warm_sent_ms,
      pm.gpu_indices, pm.cold_start_ms,
      (n.state = 'ONLINE' AND n.gateway_id IS NOT NULL) AS online,
      (n.warm_app_ids ? pm.app_id) AS warm_on_node,
      (SELECT count(*)::int FROM attempts a WHERE a.node_id = pm.node_id AND a.app_id = pm.app_id AND a.ended_at IS NULL) AS running
    FROM pool_members pm JOIN nodes n ON n.id = pm.node_id
    WHERE pm.app_id IN (${sql.join(appIds)})
    ORDER BY pm.app_id, pm.since, pm.node_id`.execute(db);
  return rows.rows;
}

/** Queue, running tasks and recent failures of each app. */
export async function loadAppLoad(db: Db, appIds: readonly string[]): Promise<Map<string, AppLoad>> {
  const load = new Map<string, { -readonly [K in keyof AppLoad]: AppLoad[K] }>();
  for (const id of appIds) load.set(id, { queued: 0, oldestWaitMs: undefined, running: 0, outsideNodes: 0, recentFinished: 0, recentFailed: 0 });
  if (appIds.length === 0) return load;
  const ids = sql.join(appIds);
  const [queued, running, recent] = await Promise.all([
    // Tasks backing off before a retry do not count: a failing app must not scale itself up.
    sql<{ app_id: string; n: number; wait_ms: number }>`
      SELECT app_id, count(*)::int AS n, (extract(epoch FROM now() - min(created_at)) * 1000)::float8 AS wait_ms
      FROM tasks WHERE state = 'QUEUED' AND app_id IN (${ids}) AND (not_before IS NULL OR not_before <= now())
      GROUP BY app_id`.execute(db),
    sql<{ app_id: string; n: number; outside: number }>`
      SELECT a.app_id, count(*)::int AS n,
        count(DISTINCT a.node_id) FILTER (WHERE pm.node_id IS NULL OR pm.app_id <> a.app_id)::int AS outside
      FROM attempts a LEFT JOIN pool_members pm ON pm.node_id = a.node_id
      WHERE a.ended_at IS NULL AND a.app_id IN (${ids})
      GROUP BY a.app_id`.execute(db),
    // Lost and released attempts are the node's doing, not the app's.
    sql<{ app_id: string; n: number; failed: number }>`
      SELECT app_id, count(*)::int AS n, count(*) FILTER (WHERE state IN ('FAILED', 'TIMED_OUT'))::int AS failed
      FROM attempts
      WHERE app_id IN (${ids}) AND ended_at > now() - make_interval(secs => ${RECENT_FAILURE_WINDOW_MS / 1000})
        AND state IN ('SUCCEEDED', 'FAILED', 'TIMED_OUT')
      GROUP BY app_id`.execute(db),
  ]);
  for (const r of queued.rows) Object.assign(load.get(r.app_id)!, { queued: r.n, oldestWaitMs: Math.max(0, r.wait_ms) });
  for (const r of running.rows) Object.assign(load.get(r.app_id)!, { running: r.n, outsideNodes: r.outside });
  for (const r of recent.rows) Object.assign(load.get(r.app_id)!, { recentFinished: r.n, recentFailed: r.failed });
  return load;
}

export interface NewScalingEvent {
  readonly appId: string;
  readonly workspaceId: string;
  readonly kind: "scale_up" | "scale_down" | "release" | "warm";
  readonly fromNodes: number;
  readonly toNodes: number;
  readonly nodeIds: readonly string[];
  readonly reason: string;
  readonly coldStartMs?: number;
}

export async function recordScalingEvents(db: Db, events: readonly NewScalingEvent[]): Promise<void> {
  if (events.length === 0) return;
  await db
    .insertInto("scaling_events")
    .values(
      events.map((e) => ({
        id: newId("sev"),
        app_id: e.appId,
        workspace_id: e.workspaceId,
        kind: e.kind,
        from_nodes: e.fromNodes,
        to_nodes: e.toNodes,
        node_ids: JSON.stringify(e.nodeIds),
        reason: e.reason,
        cold_start_ms: e.coldStartMs ?? 0,
      })),
    )
    .execute();
}

/**
 * The node reports the app's instance ready: a cold-starting member becomes warm
 * and its cold start is recorded (as a "warm" event, for per-node history).
 */
export async function markMemberReady(db: Db, nodeId: string, appId: string, coldStartMs: number): Promise<boolean> {
  return db.transaction().execute(async (tx) => {
    const row = await tx
      .updateTable("pool_members")
      .set({ state: "warm", since: sql`now()` as never, cold_start_ms: coldStartMs })
      .where("node_id", "=", nodeId)
      .where("app_id", "=", appId)
      .where("state", "=", "cold_starting")
      .returning("node_id")
      .executeTakeFirst();
    if (!row) return false;
    const app = await tx.selectFrom("apps").select("workspace_id").where("id", "=", appId).executeTakeFirstOrThrow();
    const n = await tx.selectFrom("pool_members").select(sql<number>`count(*)::int`.as("n")).where("app_id", "=", appId).where("state", "<>", "releasing").executeTakeFirstOrThrow();
    await recordScalingEvents(tx, [
      { appId, workspaceId: app.workspace_id, kind: "warm", fromNodes: n.n, toNodes: n.n, nodeIds: [nodeId], reason: `instance ready in ${coldStartMs} ms`, coldStartMs },
    ]);
    return true;
  });
}

export interface ScalingEventRow {
  readonly seq: number;
  readonly id: string;
  readonly app_id: string;
  readonly kind: string;
  readonly from_nodes: number;
  readonly to_nodes: number;
  readonly node_ids: string[];
  readonly reason: string;
  readonly created_at: Date;
}

/** Newest first. */
export async function listScalingEvents(db: Db, appId: string, limit: number, beforeSeq: number | undefined): Promise<ScalingEventRow[]> {
  let query = db
    .selectFrom("scaling_events")
    .select(["seq", "id", "app_id", "kind", "from_nodes", "to_nodes", "node_ids", "reason", "created_at"])
    .where("app_id", "=", appId)
    .orderBy("seq", "desc")
    .limit(limit);
  if (beforeSeq !== undefined) query = query.where("seq", "<", beforeSeq);
  return (await query.execute()).map((r) => ({ ...r, seq: Number(r.seq) }));
}

/** Mean cold start of the app's instances over its last warm-ups (0: none yet). */
export async function meanColdStartMs(db: Db, appId: string): Promise<number> {
  const row = await sql<{ mean: number | null }>`
    SELECT avg(cold_start_ms)::float8 AS mean FROM (
      SELECT cold_start_ms FROM scaling_events WHERE app_id = ${appId} AND kind = 'warm' ORDER BY seq DESC LIMIT 50
    ) recent`.execute(db);
  return Math.round(row.rows[0]?.mean ?? 0);
}

export async function loadDesiredNodes(db: Db, appId: string): Promise<number> {
  const row = await db.selectFrom("pool_targets").select("desired_nodes").where("app_id", "=", appId).executeTakeFirst();
  return row?.desired_nodes ?? 0;
}
