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
  /**
   * Set when the node is in an app's pool: it runs only that app's tasks, and none
   * while it is leaving the pool (accepting false).
   */
  readonly pool?: { readonly appId: string; readonly accepting: boolean };
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
  /** The app has a pool: its tasks run only on the pool's nodes. */
  readonly pooled?: boolean;
  /** Tasks of one priority are taken round-robin by workspace, so one workspace's burst cannot starve another. */
  readonly workspaceId?: string;
  readonly priority?: number;
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
  readonly warm: ReadonlySet<string>;
  /** Apps given a task here in this round: their warm instance (if any) is now busy. */
  readonly placedApps: Set<string>;
}

/** Whether the node may run the task at all, pools considered. */
function allowed(node: NodeCapacity, task: TaskDemand): boolean {
  if (node.pool) return node.pool.appId === task.appId && node.pool.accepting;
  return !task.pooled;
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
    warm: node.warmAppIds,
    placedApps: new Set(),
  }));
  const blockedShapes = new Set<string>();
  const placements: Placement[] = [];
  for (const task of fairOrder(tasks)) {
    // Pooled tasks of different apps compete for different nodes: one blocked app must not block another.
    const shape = `${task.gpuCount}|${task.minMemoryBytes}|${task.allowedModels.join(",")}|${task.pooled ? task.appId : ""}`;
    if (blockedShapes.has(shape)) continue;
    let best: { state: NodeState; gpus: number[]; score: number[] } | undefined;
    for (const state of states) {
      if (state.running >= state.node.maxConcurrent || !allowed(state.node, task)) continue;
      const gpus = pickGpus(state, task);
      if (!gpus) continue;
      // Lower is better: reliable first, then an idle warm instance, then by load (which spreads
      // work over idle warm nodes instead of piling it on one), then by GPU memory tied up.
      const load = state.running / Math.max(1, state.node.maxConcurrent);
      const warm = state.warm.has(task.appId) && !state.placedApps.has(task.appId);
      const score = [state.node.reliability < UNRELIABLE_BELOW ? 1 : 0, warm ? 0 : 1, load, state.busy.size];
      if (!best || compare(score, best.score) < 0) best = { state, gpus, score };
    }
    if (!best) {
      blockedShapes.add(shape);
      continue;
    }
    for (const index of best.gpus) best.state.busy.add(index);
    best.state.running += 1;
    best.state.placedApps.add(task.appId);
    placements.push({ taskId: task.id, nodeId: best.state.node.id, gpuIndices: best.gpus });
  }
  return placements;
}

/**
 * Tasks in the order given, except that within one priority the workspaces take
 * turns (each workspace's own tasks keep their order): under contention, capacity
 * is shared between workspaces instead of going to whoever queued most.
 */
export function fairOrder(tasks: readonly TaskDemand[]): TaskDemand[] {
  if (!tasks.some((t) => t.workspaceId !== undefined && t.workspaceId !== tasks[0]?.workspaceId)) return [...tasks];
  const out: TaskDemand[] = [];
  let i = 0;
  while (i < tasks.length) {
    const priority = tasks[i]!.priority ?? 0;
    const queues = new Map<string, TaskDemand[]>();
    for (; i < tasks.length && (tasks[i]!.priority ?? 0) === priority; i++) {
      const t = tasks[i]!;
      const key = t.workspaceId ?? "";
      let q = queues.get(key);
      if (!q) queues.set(key, (q = []));
      q.push(t);
    }
    const lists = [...queues.values()];
    for (let round = 0; out.length < i; round++) for (const q of lists) if (round < q.length) out.push(q[round]!);
  }
  return out;
}

/** GPUs an idle node would give the task (the ones a pool warms its instance on), or undefined if it cannot run it. */
export function gpusOnIdleNode(node: NodeCapacity, task: Omit<TaskDemand, "id">): number[] | undefined {
  return pickGpus({ node, busy: new Set() }, task);
}

/** How many of the task's kind an idle node runs at once (0: it cannot run one). */
export function slotsOnIdleNode(node: NodeCapacity, task: Omit<TaskDemand, "id">): number {
  if (!gpusOnIdleNode(node, task)) return 0;
  if (task.gpuCount === 0) return node.maxConcurrent;
  const fitting = node.gpus.filter((gpu) => gpu.memoryTotalBytes >= task.minMemoryBytes && (task.allowedModels.length === 0 || task.allowedModels.includes(gpu.model)));
  return Math.min(node.maxConcurrent, Math.floor(fitting.length / task.gpuCount));
}

/** Free GPUs that fit, smallest memory first so bigger GPUs stay free for bigger tasks. */
function pickGpus(state: Pick<NodeState, "node" | "busy">, task: Omit<TaskDemand, "id">): number[] | undefined {
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
  if (task.pooled) {
    const members = nodes.filter((n) => n.pool?.appId === task.appId && n.pool.accepting);
    if (members.length === 0) return "the app's pool has no node yet: it is scaling up, and the task runs once a node is warm";
    if (placeTasks([task], members).length === 0) return `every node in the app's pool (${members.length}) is busy; the pool scales up within its max_nodes`;
    return undefined;
  }
  const idle = nodes.filter((n) => !n.pool).map((n) => ({ ...n, busyGpuIndices: new Set<number>(), running: 0 }));
  if (placeTasks([task], idle).length === 0) {
    return nodes.length === 0
      ? "no node is connected"
      : `no connected node can run it: it needs ${describeDemand(task)} on one node; it waits for one to join`;
  }
  if (placeTasks([task], nodes).length === 0) return "every node that fits is busy; it runs when a GPU frees up";
  return undefined;
}
