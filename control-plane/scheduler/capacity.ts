import { sql } from "kysely";
import type { Db } from "../db/database.js";
import { reliability } from "../db/nodes.js";
import type { GpuRow } from "../db/schema.js";
import type { NodeCapacity } from "./placement.js";

/**
 * The nodes that take work now (online, stream held), with what is free on
 * each: one query, since it runs in every scheduling round.
 */
export async function loadNodeCapacity(db: Db): Promise<NodeCapacity[]> {
  const rows = await sql<{
    id: string;
    gpus: GpuRow[];
    max_concurrent_tasks: number;
    warm_app_ids: string[];
    completed_attempts: number;
    lost_attempts: number;
    running: number;
    busy: number[][] | null;
    pool_app_id: string | null;
    pool_state: string | null;
  }>`
    SELECT n.id, n.gpus, n.max_concurrent_tasks, n.warm_app_ids, n.completed_attempts, n.lost_attempts, l.running, l.busy,
      pm.app_id AS pool_app_id, pm.state AS pool_state
    FROM nodes n
    LEFT JOIN pool_members pm ON pm.node_id = n.id
    CROSS JOIN LATERAL (
      SELECT count(*)::int AS running, jsonb_agg(a.gpu_indices) AS busy
      FROM attempts a WHERE a.node_id = n.id AND a.ended_at IS NULL
    ) l
    WHERE n.state = 'ONLINE' AND n.gateway_id IS NOT NULL
    -- A stable order breaks ties the same way every round: among equally idle nodes the same ones
    -- get work, so a pool's surplus nodes stay idle long enough to be released.
    ORDER BY n.id`.execute(db);
  return rows.rows.map((n) => ({
    id: n.id,
    gpus: n.gpus.map((g) => ({ index: g.index, model: g.model.toLowerCase(), memoryTotalBytes: g.memoryTotalBytes })),
    busyGpuIndices: new Set((n.busy ?? []).flat()),
    running: n.running,
    maxConcurrent: n.max_concurrent_tasks,
    warmAppIds: new Set(n.warm_app_ids),
    reliability: reliability({ completed_attempts: Number(n.completed_attempts), lost_attempts: Number(n.lost_attempts) }),
    ...(n.pool_app_id ? { pool: { appId: n.pool_app_id, accepting: n.pool_state !== "releasing" } } : {}),
  }));
}
