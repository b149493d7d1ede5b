/**
 * Where queued tasks go: a pure function of the queue and the nodes' free
 * capacity, so it can be tested without a database.
 */

export interface GpuSlot {
  readonly index: number;
  /** Lower-cased product name. */
  readonly model: string;
  readonly memoryTotalBytes: number;
}

export interface NodeCapacity {
  readonly id: string;
  readonly gpus: readonly GpuSlot[];
  /** GPU indices held by active attempts. */
  readonly busyGpuIndices: ReadonlySet<number>;
  /** Active attempts on the node. */
  readonly running: number;
  readonly maxConcurrent: number;
  readonly warmAppIds: ReadonlySet<string>;
  /** Share of its attempts the node did not lose, 0..1 (1 when it never lost one). */
  readonly reliability: number;
}

/** Below this, a node gets work only when no more reliable node fits. */
export const UNRELIABLE_BELOW = 0.8;

export interface TaskDemand {
  readonly id: string;
  readonly appId: string;
  readonly gpuCount: number;
  readonly minMemoryBytes: number;
  /** Lower-cased; empty means any model. */
  readonly allowedModels: readonly string[];
}

export interface Placement {
  readonly taskId: string;
  readonly nodeId: string;
  readonly gpuIndices: number[];
}

interface NodeState {
  readonly node: NodeCapacity;
  readonly busy: Set<number>;
  running: number;
  readonly warm: Set<string>;
}

/**
 * Places tasks in the order given (highest priority, then oldest first).
 * Each task goes to a node with enough free GPUs that meet its requirements,
 * preferring a reliable node, then one where its app is warm, then the least loaded one. A task
 * that fits nowhere stays queued; later tasks with other requirements may
 * still run (backfill), but later tasks with the same requirements wait behind
 * it, which keeps first-come-first-served among tasks competing for the same GPUs.
 */
export function placeTasks(tasks: readonly TaskDemand[], nodes: readonly NodeCapacity[]): Placement[] {
  const states: NodeState[] = nodes.map((node) => ({
    node,
    busy: new Set(node.busyGpuIndices),
    running: node.running,
    warm: new Set(node.warmAppIds),
  }));
  const blockedShapes = new Set<string>();
  const placements: Placement[] = [];
  for (const task of tasks) {
    const shape = `${task.gpuCount}|${task.minMemoryBytes}|${task.allowedModels.join(",")}`;
    if (blockedShapes.has(shape)) continue;
    let best: { state: NodeState; gpus: number[]; score: number[] } | undefined;
    for (const state of states) {
      if (state.running >= state.node.maxConcurrent) continue;
      const gpus = pickGpus(state, task);
      if (!gpus) continue;
      // Lower is better: reliable first, then warm, then by load, then by how much GPU memory we would tie up.
      const load = state.running / Math.max(1, state.node.maxConcurrent);
      const score = [state.node.reliability < UNRELIABLE_BELOW ? 1 : 0, state.warm.has(task.appId) ? 0 : 1, load, state.busy.size];
      if (!best || compare(score, best.score) < 0) best = { state, gpus, score };
    }
    if (!best) {
      blockedShapes.add(shape);
      continue;
    }
    for (const index of best.gpus) best.state.busy.add(index);
    best.state.running += 1;
    // The instance this task starts will be warm for the next task of the same app.
    best.state.warm.add(task.appId);
    placements.push({ taskId: task.id, nodeId: best.state.node.id, gpuIndices: best.gpus });
  }
  return placements;
}

/** Free GPUs that fit, smallest memory first so bigger GPUs stay free for bigger tasks. */
function pickGpus(state: NodeState, task: TaskDemand): number[] | undefined {
  if (task.gpuCount === 0) return [];
  const fitting = state.node.gpus
    .filter(
      (gpu) =>
        !state.busy.has(gpu.index) &&
        gpu.memoryTotalBytes >= task.minMemoryBytes &&
        (task.allowedModels.length === 0 || task.allowedModels.includes(gpu.model)),
    )
    .sort((a, b) => a.memoryTotalBytes - b.memoryTotalBytes || a.index - b.index);
  if (fitting.length < task.gpuCount) return undefined;
  return fitting
    .slice(0, task.gpuCount)
    .map((gpu) => gpu.index)
    .sort((a, b) => a - b);
}

function compare(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < a.length; i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** Describes what a task needs, for messages: "1 GPU with ≥ 16 GiB, model RTX 3090". */
export function describeDemand(task: Omit<TaskDemand, "id" | "appId">): string {
  if (task.gpuCount === 0) return "a free task slot (no GPU)";
  const parts = [`${task.gpuCount} GPU${task.gpuCount > 1 ? "s" : ""}`];
  if (task.minMemoryBytes > 0) parts.push(`with ≥ ${+(task.minMemoryBytes / 1024 ** 3).toFixed(1)} GiB`);
  if (task.allowedModels.length > 0) parts.push(`of model ${task.allowedModels.join(" or ")}`);
  return parts.join(" ");
}

/**
 * Why a queued task waits: no node could run it even when idle, or every node
 * that could is busy. Undefined means it fits now (the next round takes it).
 */
export function queueReason(task: TaskDemand, nodes: readonly NodeCapacity[]): string | undefined {
  const idle = nodes.map((n) => ({ ...n, busyGpuIndices: new Set<number>(), running: 0 }));
  if (placeTasks([task], idle).length === 0) {
    return nodes.length === 0
      ? "no node is connected"
      : `no connected node can run it: it needs ${describeDemand(task)} on one node; it waits for one to join`;
  }
  if (placeTasks([task], nodes).length === 0) return "every node that fits is busy; it runs when a GPU frees up";
  return undefined;
}
