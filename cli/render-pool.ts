// Human-readable views of an app's pool and its scaling decisions.
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { PoolMemberState, type PoolPolicy, type PoolStatus, type ScalingEvent } from "../sdk/index.js";
import { formatAge, formatDuration, formatTable, formatTime, MISSING } from "./format.js";

const date = (ts: Timestamp | undefined) => (ts === undefined ? undefined : timestampDate(ts));

const MEMBER_STATES: Record<PoolMemberState, string> = {
  [PoolMemberState.UNSPECIFIED]: "?",
  [PoolMemberState.COLD_STARTING]: "cold-starting",
  [PoolMemberState.WARM]: "warm",
  [PoolMemberState.RELEASING]: "releasing",
};

/** "min 0, max 4, idle 30s, scale up when a task waits 2s, ±1/round" */
export function poolPolicyText(p: PoolPolicy | undefined): string {
  if (p === undefined) return "none (tasks run on any free node)";
  const signals = [
    p.targetQueueDelayMs > 0n ? `a task waits ${formatDuration(p.targetQueueDelayMs)}` : "",
    p.targetTasksPerNode > 0 ? `over ${p.targetTasksPerNode} tasks per node` : "",
  ].filter((s) => s !== "");
  return `min ${p.minNodes}, max ${p.maxNodes}, idle timeout ${formatDuration(p.idleTimeoutMs)}, scale up when ${signals.join(" or ")}, up ≤ ${p.scaleUpStep}/round, down ≤ ${p.scaleDownStep}/round`;
}

export function renderPoolStatus(s: PoolStatus, events: readonly ScalingEvent[], now: Date): string {
  const lines = [
    `app:      ${s.appName} (${s.appId})`,
    `policy:   ${poolPolicyText(s.policy)}`,
    `nodes:    ${s.desiredNodes} desired, ${s.warmNodes} warm (${s.busyNodes} busy), ${s.coldStartingNodes} cold-starting, ${s.releasingNodes} releasing`,
    `queue:    ${s.queuedTasks} waiting (oldest ${s.queuedTasks > 0 ? formatDuration(s.oldestWaitMs) : MISSING}), ${s.runningTasks} running`,
    `cold start: ${s.meanColdStartMs > 0n ? `${formatDuration(s.meanColdStartMs)} on average` : MISSING}`,
  ];
  if (s.members.length > 0) {
    lines.push(
      "",
      formatTable(
        ["NODE", "NAME", "STATE", "SINCE", "RUNNING", "LAST BUSY", "COLD START"],
        s.members.map((m) => [
          m.nodeId,
          m.nodeName,
          MEMBER_STATES[m.state],
          formatAge(date(m.since), now),
          String(m.runningTasks),
          formatAge(date(m.lastBusyTime), now),
          m.coldStartMs > 0n ? formatDuration(m.coldStartMs) : MISSING,
        ]),
      ),
    );
  }
  if (events.length > 0) lines.push("", "recent scaling decisions:", renderScalingEvents(events));
  return lines.join("\n");
}

export function renderScalingEvents(events: readonly ScalingEvent[]): string {
  return formatTable(
    ["TIME", "KIND", "NODES", "REASON"],
    events.map((e) => [formatTime(date(e.time)), e.kind, e.kind === "warm" ? e.nodeIds.join(",") : `${e.fromNodes} → ${e.toNodes}`, e.reason]),
  );
}
