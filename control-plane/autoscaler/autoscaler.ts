import { create } from "@bufbuild/protobuf";
import { sql } from "kysely";
import { ConnectResponseSchema, type ConnectResponse } from "../../gen/ngpu/v1/worker_pb.js";
import type { Bus } from "../bus/bus.js";
import type { Db } from "../db/database.js";
import {
  type AppLoad,
  loadAppLoad,
  loadMembers,
  loadPooledApps,
  type MemberRow,
  type NewScalingEvent,
  type PooledAppRow,
  recordScalingEvents,
} from "../db/pools.js";
import { runtimeToProto } from "../dispatch/assignment.js";
import type { Logger } from "../log.js";
import { loadNodeCapacity } from "../scheduler/capacity.js";
import { gpusOnIdleNode, type NodeCapacity, slotsOnIdleNode, type TaskDemand } from "../scheduler/placement.js";
import { startRoundLoop } from "../scheduler/round-loop.js";
import { SCHEDULER_LOCK_KEY } from "../scheduler/scheduler.js";
import { type AutoscalerState, decide, type ScalingAction } from "./decide.js";

export interface AutoscalerOptions {
  readonly db: Db;
  readonly bus: Bus;
  readonly logger: Logger;
  /** A round runs this often without a wake-up. Default 1000 ms. */
  readonly intervalMs?: number;
  /** Rounds woken by signals (a task arrived, one ended) run at most this often. Default 500 ms (or intervalMs if shorter). */
  readonly minRoundGapMs?: number;
  /** WarmApp is sent again to a member that has not reported ready after this long. Default 10000 ms. */
  readonly warmResendMs?: number;
}

export interface Autoscaler {
  /** Ask for a round soon. */
  wake(): void;
  /** One round now; resolves with what it decided (empty when another replica holds the lock). */
  runRound(): Promise<ScalingAction[]>;
  shutdown(): Promise<void>;
}

/** Any constant works; it only has to be the same on every replica. */
const AUTOSCALER_LOCK_KEY = 0x6e677076;

const demandOf = (app: PooledAppRow): Omit<TaskDemand, "id"> => ({
  appId: app.id,
  gpuCount: app.gpu_count,
  minMemoryBytes: app.gpu_min_memory_bytes,
  allowedModels: app.gpu_models.map((m) => m.toLowerCase()),
});

function warmMessage(app: PooledAppRow, gpuIndices: readonly number[]): ConnectResponse {
  return create(ConnectResponseSchema, {
    message: {
      case: "warmApp",
      value: {
        app: { id: app.id, name: app.name, version: app.version, runtime: runtimeToProto(app.runtime), env: app.env },
        gpuIndices: [...gpuIndices],
      },
    },
  });
}

const releaseMessage = (appId: string): ConnectResponse => create(ConnectResponseSchema, { message: { case: "releaseApp", value: { appId } } });

/** The decision function's view of the pools, from the database's rows. */
export function buildState(
  apps: readonly PooledAppRow[],
  members: readonly MemberRow[],
  load: ReadonlyMap<string, AppLoad>,
  capacity: readonly NodeCapacity[],
  nowMs: number,
): AutoscalerState {
  return {
    pools: apps.map((app) => {
      const l = load.get(app.id)!;
      const demand = demandOf(app);
      const fits = new Map<string, number>();
      for (const node of capacity) {
        const slots = slotsOnIdleNode(node, demand);
        if (slots > 0) fits.set(node.id, slots);
      }
      return {
        appId: app.id,
        workspaceId: app.workspace_id,
        policy: app.pool_policy,
        members: members
          .filter((m) => m.app_id === app.id)
          .map((m) => ({ nodeId: m.node_id, state: m.state, running: m.running, lastBusyAtMs: m.running > 0 ? nowMs : nowMs - m.idle_ms, online: m.online })),
        outsideNodes: l.outsideNodes,
        queued: l.queued,
        oldestQueuedAtMs: l.oldestWaitMs === undefined ? undefined : nowMs - l.oldestWaitMs,
        running: l.running,
        recentFinished: l.recentFinished,
        recentFailed: l.recentFailed,
        fits,
      };
    }),
    freeNodes: capacity
      .filter((n) => !n.pool && n.running === 0)
      .sort((a, b) => b.reliability - a.reliability || a.id.localeCompare(b.id))
      .map((n) => ({ id: n.id, warmAppIds: n.warmAppIds })),
  };
}

/**
 * Runs the autoscaler: each round loads the pools' state, calls decide() and
 * applies its actions. One replica acts at a time (a try-lock: the others skip
 * the round); membership changes take the scheduler's lock too, so a node never
 * leaves a pool while a task of the app is being placed on it, which keeps the
 * max_nodes cap exact.
 */
export function startAutoscaler(options: AutoscalerOptions): Autoscaler {
  const { db, bus, logger } = options;
  const log = logger.child({ component: "autoscaler" });
  const intervalMs = options.intervalMs ?? 1_000;
  const minGapMs = options.minRoundGapMs ?? Math.min(500, intervalMs);
  const warmResendMs = options.warmResendMs ?? 10_000;

  async function runRound(): Promise<ScalingAction[]> {
    const outcome = await db.transaction().execute(async (tx) => {
      const lock = await sql<{ ok: boolean }>`SELECT pg_try_advisory_xact_lock(${AUTOSCALER_LOCK_KEY}) AS ok`.execute(tx);
      if (!lock.rows[0]?.ok) return undefined;
      const apps = await loadPooledApps(tx);
      if (apps.length === 0) return undefined;
      const ids = apps.map((a) => a.id);
      // Idle time counts from the last task that ran there, even one that began and ended between rounds.
      await sql`
        UPDATE pool_members pm SET last_busy_at = greatest(pm.last_busy_at, x.t)
        FROM (
          SELECT node_id, app_id, max(coalesce(ended_at, now())) AS t FROM attempts
          WHERE app_id IN (${sql.join(ids)}) AND (ended_at IS NULL OR ended_at > now() - interval '1 hour')
          GROUP BY node_id, app_id
        ) x
        WHERE pm.node_id = x.node_id AND pm.app_id = x.app_id AND x.t > pm.last_busy_at`.execute(tx);
      const members = await loadMembers(tx, ids);
      const load = await loadAppLoad(tx, ids);
      const capacity = await loadNodeCapacity(tx);
      const nowMs = Date.now();
      const decision = decide(buildState(apps, members, load, capacity, nowMs), nowMs);

      const messages: Array<[string, ConnectResponse]> = [];
      const events: NewScalingEvent[] = [];
      const appById = new Map(apps.map((a) => [a.id, a]));
      const nodeById = new Map(capacity.map((n) => [n.id, n]));
      const idleGuard = (appId: string) => sql<boolean>`NOT EXISTS (
        SELECT 1 FROM attempts a WHERE a.node_id = pool_members.node_id AND a.app_id = ${appId} AND a.ended_at IS NULL)`;
      const applied: ScalingAction[] = [];

      // Members the node already reports warm (a ready instance from before, or an AppReady we missed).
      await sql`
        UPDATE pool_members pm SET state = 'warm', since = now()
        FROM nodes n WHERE n.id = pm.node_id AND pm.state = 'cold_starting' AND n.warm_app_ids ? pm.app_id
          AND pm.app_id IN (${sql.join(ids)})`.execute(tx);
      // WarmApp is a signal, not the record: send it again to members that never answered.
      const silent = members.filter((m) => m.state === "cold_starting" && m.online && !m.warm_on_node && m.warm_sent_ms >= warmResendMs);
      if (silent.length > 0) {
        await tx.updateTable("pool_members").set({ warm_sent_at: sql`now()` as never }).where("node_id", "in", silent.map((m) => m.node_id)).execute();
        for (const m of silent) messages.push([m.node_id, warmMessage(appById.get(m.app_id)!, m.gpu_indices)]);
      }
      const targets = [...decision.desired].map(([appId, n]) => sql`(${appId}, ${n})`);
      if (targets.length > 0) {
        await sql`
          INSERT INTO pool_targets (app_id, desired_nodes) VALUES ${sql.join(targets)}
          ON CONFLICT (app_id) DO UPDATE SET desired_nodes = excluded.desired_nodes, updated_at = now()
          WHERE pool_targets.desired_nodes <> excluded.desired_nodes`.execute(tx);
      }
      // Nodes leave last, under the scheduler's lock (held to the commit): a node must not leave
      // while a task of the app is being placed on it. Joining and releasing need no lock (a
      // member that takes one more task while turning to releasing stays until it ends), so
      // the scheduler waits only when a node actually leaves.
      const leavingLast = [...decision.actions].sort((a, b) => Number(a.kind === "leave" || a.kind === "scale_down") - Number(b.kind === "leave" || b.kind === "scale_down"));
      let locked = false;
      for (const action of leavingLast) {
        const app = appById.get(action.appId)!;
        if ((action.kind === "leave" || action.kind === "scale_down") && !locked) {
          await sql`SELECT pg_advisory_xact_lock(${SCHEDULER_LOCK_KEY})`.execute(tx);
          locked = true;
        }
        if (action.kind === "leave" || action.kind === "scale_down") {
          let query = tx.deleteFrom("pool_members").where("app_id", "=", action.appId).where("node_id", "in", action.nodeIds).where(idleGuard(action.appId));
          if (action.kind === "leave") query = query.where("state", "=", "releasing");
          const gone = (await query.returning("node_id").execute()).map((r) => r.node_id);
          for (const nodeId of gone) messages.push([nodeId, releaseMessage(action.appId)]);
          if (gone.length === 0) continue;
          if (action.kind === "scale_down") {
            applied.push({ ...action, nodeIds: gone, to: action.from - gone.length });
            events.push({ appId: app.id, workspaceId: app.workspace_id, kind: "scale_down", fromNodes: action.from, toNodes: action.from - gone.length, nodeIds: gone, reason: action.reason });
          }
        } else if (action.kind === "release") {
          await tx.updateTable("pool_members").set({ state: "releasing", since: sql`now()` as never }).where("app_id", "=", action.appId).where("node_id", "in", action.nodeIds).execute();
          applied.push(action);
          events.push({ appId: app.id, workspaceId: app.workspace_id, kind: "release", fromNodes: action.from, toNodes: action.to, nodeIds: action.nodeIds, reason: action.reason });
        } else {
          const rows = action.nodeIds.flatMap((nodeId) => {
            const gpus = gpusOnIdleNode(nodeById.get(nodeId)!, demandOf(app));
            return gpus ? [{ node_id: nodeId, app_id: app.id, state: "cold_starting", gpu_indices: JSON.stringify(gpus) }] : [];
          });
          if (rows.length === 0) continue;
          const joined = await tx.insertInto("pool_members").values(rows).onConflict((oc) => oc.column("node_id").doNothing()).returning(["node_id", "gpu_indices"]).execute();
          for (const j of joined) messages.push([j.node_id, warmMessage(app, j.gpu_indices)]);
          const nodeIds = joined.map((j) => j.node_id);
          applied.push({ ...action, nodeIds, to: action.from + nodeIds.length });
          events.push({ appId: app.id, workspaceId: app.workspace_id, kind: "scale_up", fromNodes: action.from, toNodes: action.from + nodeIds.length, nodeIds, reason: action.reason });
        }
      }

      await recordScalingEvents(tx, events);
      return { messages, applied };
    });
    if (!outcome) return [];
    // Only after the commit: a worker must never warm for a membership the database does not have.
    for (const [nodeId, message] of outcome.messages) bus.sendToNode(nodeId, message);
    for (const a of outcome.applied) if (a.kind !== "leave") log.info({ app: a.appId, kind: a.kind, nodes: a.nodeIds.length, from: a.from, to: a.to, reason: a.reason }, "pool scaled");
    // New members take tasks (even while warming); nodes that left can run other apps' tasks.
    if (outcome.applied.length > 0) bus.wakeScheduler();
    return outcome.applied;
  }

  // A task arriving or ending wakes the scheduler; it may change what the pools want too.
  const loop = startRoundLoop({
    bus,
    log,
    what: "autoscaler round",
    intervalMs,
    minGapMs,
    round: async () => {
      await runRound();
    },
  });

  return { wake: loop.wake, runRound, shutdown: loop.shutdown };
}
