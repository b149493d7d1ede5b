import { loadNodeLoad } from "../db/attempts.js";
import type { Db } from "../db/database.js";
import { reliability } from "../db/nodes.js";
import type { GpuRow } from "../db/schema.js";
import type { NodeCapacity } from "./placement.js";

/** The nodes that take work now (online, stream held), with what is free on each. */
export async function loadNodeCapacity(db: Db): Promise<NodeCapacity[]> {
  const nodes = await db
    .selectFrom("nodes")
    .select(["id", "gpus", "max_concurrent_tasks", "warm_app_ids", "completed_attempts", "lost_attempts"])
    .where("state", "=", "ONLINE")
    .where("gateway_id", "is not", null)
    .execute();
  const load = await loadNodeLoad(
    db,
    nodes.map((n) => n.id),
  );
  return nodes.map((n) => {
    const l = load.get(n.id)!;
    return {
      id: n.id,
      gpus: (n.gpus as GpuRow[]).map((g) => ({ index: g.index, model: g.model.toLowerCase(), memoryTotalBytes: g.memoryTotalBytes })),
      busyGpuIndices: l.busyGpuIndices,
      running: l.running,
      maxConcurrent: n.max_concurrent_tasks,
      warmAppIds: new Set(n.warm_app_ids),
      reliability: reliability(n),
    };
  });
}
