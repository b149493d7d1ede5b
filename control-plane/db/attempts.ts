import { sql } from "kysely";
import { type AttemptToDispatch, dispatchApp } from "../dispatch/assignment.js";
import type { Db } from "./database.js";

/** Active attempts (not ended) as dispatchable assignments, e.g. to re-send after a reconnect. */
export async function loadDispatchableAttempts(
  db: Db,
  where: { nodeIds: readonly string[]; attemptIds?: readonly string[]; states?: readonly string[]; olderThanMs?: number },
): Promise<Array<AttemptToDispatch & { nodeId: string; state: string; createdAtMs: number }>> {
  if (where.nodeIds.length === 0) return [];
  let query = db
    .selectFrom("attempts as at")
    .innerJoin("tasks as t", "t.id", "at.task_id")
    .innerJoin("apps as a", "a.id", "t.app_id")
    .select([
      "at.id as attempt_id",
      "at.node_id",
      "at.state",
      "at.created_at",
      "at.fencing_token",
      "at.gpu_indices",
      "t.id as task_id",
      "t.input",
      "t.timeout_ms",
      "a.id as app_id",
      "a.name as app_name",
      "a.version as app_version",
      "a.runtime",
      "a.env",
    ])
    .where("at.node_id", "in", [...where.nodeIds])
    .where("at.ended_at", "is", null)
    // An attempt whose task was cancelled meanwhile is not worth starting.
    .whereRef("t.current_attempt_id", "=", "at.id")
    .where("t.state", "in", ["ASSIGNED", "STARTING", "RUNNING"]);
  if (where.attemptIds) {
    if (where.attemptIds.length === 0) return [];
    query = query.where("at.id", "in", [...where.attemptIds]);
  }
  if (where.states) query = query.where("at.state", "in", [...where.states]);
  if (where.olderThanMs !== undefined) query = query.where(sql<boolean>`at.created_at < now() - make_interval(secs => ${where.olderThanMs / 1000})`);
  const rows = await query.execute();
  return rows.map((r) => ({
    nodeId: r.node_id,
    state: r.state,
    createdAtMs: r.created_at.getTime(),
    taskId: r.task_id,
    attemptId: r.attempt_id,
    fencingToken: r.fencing_token,
    gpuIndices: r.gpu_indices,
    timeoutMs: r.timeout_ms,
    input: r.input,
    app: dispatchApp(r),
  }));
}

/** What holds each node's GPUs now: the GPU indices of its active attempts, and how many there are. */
export interface NodeLoad {
  readonly busyGpuIndices: Set<number>;
  running: number;
}

export async function loadNodeLoad(db: Db, nodeIds: readonly string[]): Promise<Map<string, NodeLoad>> {
  const load = new Map<string, NodeLoad>(nodeIds.map((id) => [id, { busyGpuIndices: new Set<number>(), running: 0 }]));
  if (nodeIds.length === 0) return load;
  const active = await db
    .selectFrom("attempts")
    .select(["node_id", "gpu_indices"])
    .where("ended_at", "is", null)
    .where("node_id", "in", [...nodeIds])
    .execute();
  for (const a of active) {
    const entry = load.get(a.node_id)!;
    entry.running += 1;
    for (const i of a.gpu_indices) entry.busyGpuIndices.add(i);
  }
  return load;
}
