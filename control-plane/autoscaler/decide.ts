/**
 * The autoscaler's decisions: a pure function of the pools' state and the
 * time, so every rule can be tested on a simulated clock. The loop
 * (autoscaler.ts) loads the state, calls decide() and applies what it returns.
 */
import type { PoolPolicyRow } from "../db/schema.js";

export type MemberState = "cold_starting" | "warm" | "releasing";

export interface MemberView {
  readonly nodeId: string;
  readonly state: MemberState;
  /** Tasks of the pool's app running on the node. */
  readonly running: number;
  /** When the node last ran a task of the app (or joined), ms on the loop's clock. */
  readonly lastBusyAtMs: number;
  /** Online, with its stream held. */
  readonly online: boolean;
}

export interface PoolView {
  readonly appId: string;
  readonly workspaceId: string;
  /** Null: the app's pool was removed; its members leave. */
  readonly policy: PoolPolicyRow | null;
  readonly members: readonly MemberView[];
  /** Nodes outside the pool still running the app's tasks (from before it had a pool): they count against max. */
  readonly outsideNodes: number;
  /** Waiting tasks, not counting those backing off before a retry (they must not drive scale-up). */
  readonly queued: number;
  /** Creation time of the oldest waiting task, ms. */
  readonly oldestQueuedAtMs: number | undefined;
  readonly running: number;
  /** Attempts of the app that ended recently, and how many of them failed. */
  readonly recentFinished: number;
  readonly recentFailed: number;
  /** Every online node able to run the app, with how many of its tasks it runs at once. */
  readonly fits: ReadonlyMap<string, number>;
}

export interface FreeNode {
  readonly id: string;
  /** Apps with an instance still ready there (from an earlier pool or task): joining those is a warm start. */
  readonly warmAppIds: ReadonlySet<string>;
}

export interface AutoscalerState {
  readonly pools: readonly PoolView[];
  /** Online nodes in no pool and running nothing, best first. */
  readonly freeNodes: readonly FreeNode[];
}

export type ScalingAction =
  /** The nodes join the pool (cold_starting) and are told to warm the app. */
  | { readonly kind: "scale_up"; readonly appId: string; readonly nodeIds: string[]; readonly from: number; readonly to: number; readonly reason: string }
  /** Idle members leave the pool now. */
  | { readonly kind: "scale_down"; readonly appId: string; readonly nodeIds: string[]; readonly from: number; readonly to: number; readonly reason: string }
  /** Members take no new tasks of the app and leave once what runs there ends. */
  | { readonly kind: "release"; readonly appId: string; readonly nodeIds: string[]; readonly from: number; readonly to: number; readonly reason: string }
  /** Releasing members whose tasks ended: they leave now (no event; the release was recorded). */
  | { readonly kind: "leave"; readonly appId: string; readonly nodeIds: string[] };

export interface Decision {
  readonly actions: ScalingAction[];
  /** Nodes each pool should hold now, by app id. */
  readonly desired: ReadonlyMap<string, number>;
}

/** A failure rate at or above this, over at least FAILURE_MIN_SAMPLES recent attempts, holds scale-up. */
export const FAILURE_RATE_HOLD = 0.5;
export const FAILURE_MIN_SAMPLES = 4;

interface Plan {
  readonly pool: PoolView;
  readonly policy: PoolPolicyRow;
  /** Members that serve tasks (not releasing, online). */
  readonly active: MemberView[];
  /** Every node counting against max: all members plus outside nodes. */
  held: number;
  desired: number;
  /** Nodes still wanted to reach min, then to reach desired (within max and the step). */
  needMin: number;
  needBurst: number;
  readonly reason: string;
  readonly added: string[];
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;

/** How many nodes the pool wants by its signals, before min/max, and why. */
function wanted(pool: PoolView, policy: PoolPolicyRow, active: readonly MemberView[], nowMs: number): { want: number; reason: string } {
  const demand = pool.queued + pool.running;
  const slotsOf = (m: MemberView) => pool.fits.get(m.nodeId) ?? 1;
  const busyNodes = active.filter((m) => m.running > 0).length;
  let want = busyNodes;
  let reason = `${plural(busyNodes, "node")} busy`;
  if (policy.targetTasksPerNode > 0) {
    const byTasks = Math.ceil(demand / policy.targetTasksPerNode);
    if (byTasks > want) {
      want = byTasks;
      reason = `${plural(demand, "task")} queued or running, target ${policy.targetTasksPerNode} per node`;
    }
  }
  if (policy.targetQueueDelayMs > 0 && pool.queued > 0) {
    const freeSlots = active.reduce((sum, m) => sum + Math.max(0, slotsOf(m) - m.running), 0);
    const waitedMs = pool.oldestQueuedAtMs === undefined ? 0 : Math.max(0, nowMs - pool.oldestQueuedAtMs);
    // Tasks beyond the free slots would wait for a running one to end: warm nodes for them now,
    // rather than after they have waited past the target. Only once the queue has lasted a
    // quarter of the target, though (or the pool has no node at all): a task that arrived a
    // moment ago is the scheduler's to place, and counting it would grow the pool with every
    // burst of arrivals.
    const beyond = pool.queued - freeSlots;
    const backlog = beyond > 0 && (active.length === 0 || waitedMs >= policy.targetQueueDelayMs / 4);
    if (backlog || waitedMs >= policy.targetQueueDelayMs) {
      // Slots a joining node adds: the smallest among nodes that fit, so the estimate errs towards more nodes.
      const perNode = pool.fits.size === 0 ? 1 : Math.max(1, Math.min(...pool.fits.values()));
      const byDelay = active.length + Math.ceil(Math.max(1, beyond) / perNode);
      if (byDelay > want) {
        want = byDelay;
        reason =
          waitedMs >= policy.targetQueueDelayMs
            ? `oldest waiting task has waited ${waitedMs} ms, target ${policy.targetQueueDelayMs} ms`
            : `${plural(pool.queued, "task")} waiting, ${plural(freeSlots, "free slot")} in the pool`;
      }
    } else if (active.length > want) {
      want = active.length;
    }
  }
  return { want, reason };
}

/**
 * Decides what each pool does now. Rules, in order:
 * 1. Members that went offline, or whose pool was removed or shrank below them, are released
 *    (idle ones leave at once; busy ones when their tasks end). Released members with nothing
 *    running leave.
 * 2. Each pool wants nodes by its signal (target queue delay or tasks per node), clamped to
 *    [min, max]. An app whose recent attempts mostly failed does not grow (beyond one node
 *    when it has none), and tasks backing off before a retry are not counted at all.
 * 3. Free nodes go first to pools below their minimum, then to the rest, one node per turn
 *    to the workspace holding the fewest pool nodes (fair sharing under contention), within
 *    each pool's max (members + releasing + outside nodes: the cap holds during changes)
 *    and its scale-up step.
 * 4. A pool that still needs nodes when none is free may take them from pools of other
 *    workspaces holding more than their fair share, never below those pools' minimum.
 * 5. Idle members leave after the idle timeout while the pool holds more than it wants, at
 *    most scale_down_step a round.
 */
export function decide(state: AutoscalerState, nowMs: number): Decision {
  const actions: ScalingAction[] = [];
  const desired = new Map<string, number>();
  const plans: Plan[] = [];

  for (const pool of state.pools) {
    const leaving = pool.members.filter((m) => m.state === "releasing" && m.running === 0);
    if (leaving.length > 0) actions.push({ kind: "leave", appId: pool.appId, nodeIds: leaving.map((m) => m.nodeId) });
    const members = pool.members.filter((m) => !leaving.includes(m));
    const policy = pool.policy;
    if (!policy) {
      release(pool, members.filter((m) => m.state !== "releasing"), members.length, 0, "the app's pool was removed");
      desired.set(pool.appId, 0);
      continue;
    }
    const offline = members.filter((m) => m.state !== "releasing" && !m.online);
    if (offline.length > 0) release(pool, offline, members.length, members.length - offline.length, "node went offline");
    let active = members.filter((m) => m.state !== "releasing" && m.online);
    // max lowered below what the pool holds: shed the idle first.
    const over = members.length + pool.outsideNodes - policy.maxNodes;
    if (over > 0 && active.length > 0) {
      const shed = [...active].sort((a, b) => a.running - b.running || a.lastBusyAtMs - b.lastBusyAtMs).slice(0, over);
      release(pool, shed, members.length, members.length - shed.length, `max_nodes is ${policy.maxNodes}`);
      active = active.filter((m) => !shed.includes(m));
    }
    const held = members.length + pool.outsideNodes;
    let { want, reason } = wanted(pool, policy, active, nowMs);
    const failing = pool.recentFinished >= FAILURE_MIN_SAMPLES && pool.recentFailed / pool.recentFinished >= FAILURE_RATE_HOLD;
    if (failing && want > active.length) {
      const hold = Math.max(active.length, pool.queued > 0 ? 1 : 0);
      if (hold < want) {
        want = hold;
        reason = `scale-up held: ${pool.recentFailed} of the last ${pool.recentFinished} attempts failed`;
      }
    }
    const target = Math.min(policy.maxNodes, Math.max(policy.minNodes, want));
    desired.set(pool.appId, target);
    const room = Math.max(0, policy.maxNodes - held);
    const needTotal = Math.min(room, policy.scaleUpStep, Math.max(0, target - active.length));
    const needMin = Math.min(needTotal, Math.max(0, policy.minNodes - active.length));
    plans.push({
      pool,
      policy,
      active,
      held,
      desired: target,
      needMin,
      needBurst: needTotal - needMin,
      reason: needMin > 0 && active.length + needTotal <= policy.minNodes ? `below min_nodes (${policy.minNodes})` : reason,
      added: [],
    });
  }

  allocate(plans, state.freeNodes);
  reclaim(plans);

  for (const plan of plans) {
    const { pool, policy, active } = plan;
    if (plan.added.length > 0) {
      actions.push({
        kind: "scale_up",
        appId: pool.appId,
        nodeIds: plan.added,
        from: active.length,
        to: active.length + plan.added.length,
        reason: plan.reason,
      });
      continue;
    }
    // Scale down: idle past the timeout, while the pool holds more than it wants (never below min).
    const keep = Math.max(policy.minNodes, plan.desired);
    if (active.length <= keep || pool.queued > 0) continue;
    const idle = active
      .filter((m) => m.running === 0 && nowMs - m.lastBusyAtMs >= policy.idleTimeoutMs)
      .sort((a, b) => a.lastBusyAtMs - b.lastBusyAtMs)
      .slice(0, Math.min(active.length - keep, policy.scaleDownStep));
    if (idle.length === 0) continue;
    actions.push({
      kind: "scale_down",
      appId: pool.appId,
      nodeIds: idle.map((m) => m.nodeId),
      from: active.length,
      to: active.length - idle.length,
      reason: `${plural(idle.length, "node")} idle for ${policy.idleTimeoutMs} ms or more; pool wants ${keep}`,
    });
  }
  return { actions, desired };

  /** Idle members leave now; busy ones take no new tasks and leave when done. */
  function release(pool: PoolView, members: readonly MemberView[], from: number, to: number, reason: string) {
    const idle = members.filter((m) => m.running === 0).map((m) => m.nodeId);
    const busy = members.filter((m) => m.running > 0).map((m) => m.nodeId);
    if (idle.length > 0) actions.push({ kind: "scale_down", appId: pool.appId, nodeIds: idle, from, to, reason });
    if (busy.length > 0) actions.push({ kind: "release", appId: pool.appId, nodeIds: busy, from, to, reason });
  }

  /** Pools below min first, then the others; one node per turn to the workspace holding fewest. */
  function allocate(all: Plan[], free: readonly FreeNode[]) {
    const taken = new Set<string>();
    const heldBy = new Map<string, number>();
    for (const p of all) heldBy.set(p.pool.workspaceId, (heldBy.get(p.pool.workspaceId) ?? 0) + p.active.length);
    for (const phase of ["min", "burst"] as const) {
      for (;;) {
        const needy = all.filter((p) => (phase === "min" ? p.needMin : p.needBurst) > 0 && candidate(p) !== undefined);
        if (needy.length === 0) break;
        needy.sort(
          (a, b) =>
            (heldBy.get(a.pool.workspaceId) ?? 0) - (heldBy.get(b.pool.workspaceId) ?? 0) ||
            a.active.length + a.added.length - (b.active.length + b.added.length) ||
            a.pool.appId.localeCompare(b.pool.appId),
        );
        const p = needy[0]!;
        const node = candidate(p)!;
        taken.add(node.id);
        p.added.push(node.id);
        heldBy.set(p.pool.workspaceId, (heldBy.get(p.pool.workspaceId) ?? 0) + 1);
        if (phase === "min") p.needMin -= 1;
        else p.needBurst -= 1;
      }
    }
    function candidate(p: Plan): FreeNode | undefined {
      let fallback: FreeNode | undefined;
      for (const node of free) {
        if (taken.has(node.id) || !p.pool.fits.has(node.id)) continue;
        if (node.warmAppIds.has(p.pool.appId)) return node;
        fallback ??= node;
      }
      return fallback;
    }
  }

  /**
   * No free node left for a pool that needs one: workspaces holding more than an even share of
   * the pooled nodes give back members above their pools' minimum (idle ones first). The node
   * joins the needy pool once it is free, in a later round.
   */
  function reclaim(all: Plan[]) {
    const needy = all.filter((p) => p.needMin + p.needBurst > 0);
    if (needy.length === 0) return;
    const heldBy = new Map<string, number>();
    for (const p of all) heldBy.set(p.pool.workspaceId, (heldBy.get(p.pool.workspaceId) ?? 0) + p.active.length + p.added.length);
    const contenders = new Set([...needy.map((p) => p.pool.workspaceId), ...[...heldBy].filter(([, n]) => n > 0).map(([w]) => w)]);
    const total = [...heldBy.values()].reduce((a, b) => a + b, 0);
    const fair = Math.floor(total / Math.max(1, contenders.size));
    const givenBy = new Map<Plan, MemberView[]>();
    for (const taker of needy) {
      let want = taker.needMin + taker.needBurst;
      // A pool below its minimum may take from anyone above theirs; a burst only from richer workspaces.
      const takerHeld = heldBy.get(taker.pool.workspaceId) ?? 0;
      if (taker.needMin === 0 && takerHeld >= fair) continue;
      for (const donor of all) {
        if (want === 0) break;
        if (donor === taker || donor.pool.workspaceId === taker.pool.workspaceId) continue;
        const donorHeld = heldBy.get(donor.pool.workspaceId) ?? 0;
        if (donorHeld <= fair && taker.needMin === 0) continue;
        const given = givenBy.get(donor) ?? [];
        const spare = donor.active.length - given.length - donor.policy.minNodes;
        if (spare <= 0 || donor.added.length > 0) continue;
        // Down to the even share for a burst; anything above the donor's minimum for a minimum.
        const limit = taker.needMin > 0 ? spare : Math.max(0, donorHeld - fair);
        const pick = donor.active
          .filter((m) => !given.includes(m) && taker.pool.fits.has(m.nodeId))
          .sort((a, b) => a.running - b.running || a.lastBusyAtMs - b.lastBusyAtMs)
          .slice(0, Math.min(spare, want, limit, donor.policy.scaleDownStep - given.length));
        if (pick.length === 0) continue;
        given.push(...pick);
        givenBy.set(donor, given);
        heldBy.set(donor.pool.workspaceId, donorHeld - pick.length);
        want -= pick.length;
      }
    }
    for (const [donor, given] of givenBy) {
      const n = donor.active.length;
      const reason = `nodes shared with other workspaces under contention (fair share ${fair})`;
      release(donor.pool, given, n, n - given.length, reason);
      // What it gave is no longer active: it must not also scale down the same members.
      donor.active.splice(0, donor.active.length, ...donor.active.filter((m) => !given.includes(m)));
      donor.desired = Math.min(donor.desired, donor.active.length);
    }
  }
}
