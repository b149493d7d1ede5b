import { describe, expect, it } from "vitest";
import { fairOrder, type NodeCapacity, type TaskDemand, placeTasks, queueReason, slotsOnIdleNode } from "./placement.js";

const GiB = 1024 ** 3;

function node(id: string, gpus: Array<[string, number]>, extra: Partial<NodeCapacity> = {}): NodeCapacity {
  return {
    id,
    gpus: gpus.map(([model, mem], index) => ({ index, model: model.toLowerCase(), memoryTotalBytes: mem * GiB })),
    busyGpuIndices: new Set(),
    running: 0,
    maxConcurrent: 8,
    warmAppIds: new Set(),
    reliability: 1,
    ...extra,
  };
}

function task(id: string, extra: Partial<TaskDemand> = {}): TaskDemand {
  return { id, appId: "app", gpuCount: 1, minMemoryBytes: 0, allowedModels: [], ...extra };
}

describe("placeTasks", () => {
  it("puts a task only on a GPU with enough memory and an allowed model", () => {
    const nodes = [node("small", [["RTX 3060", 12]]), node("big", [["RTX 3090", 24]])];
    expect(placeTasks([task("t", { minMemoryBytes: 16 * GiB })], nodes)).toEqual([{ taskId: "t", nodeId: "big", gpuIndices: [0] }]);
    expect(placeTasks([task("t", { allowedModels: ["rtx 3060"] })], nodes)).toEqual([{ taskId: "t", nodeId: "small", gpuIndices: [0] }]);
    expect(placeTasks([task("t", { allowedModels: ["h100"] })], nodes)).toEqual([]);
  });

  it("needs all requested GPUs on one node", () => {
    const nodes = [node("a", [["A", 24]]), node("b", [["A", 24], ["A", 24]])];
    expect(placeTasks([task("t", { gpuCount: 2 })], nodes)).toEqual([{ taskId: "t", nodeId: "b", gpuIndices: [0, 1] }]);
    expect(placeTasks([task("t", { gpuCount: 3 })], nodes)).toEqual([]);
  });

  it("prefers a node where the app is warm, then the least loaded", () => {
    const nodes = [
      node("busy", [["A", 24], ["A", 24]], { busyGpuIndices: new Set([1]), running: 1 }),
      node("idle", [["A", 24]]),
      node("warm", [["A", 24], ["A", 24]], { busyGpuIndices: new Set([0]), running: 1, warmAppIds: new Set(["app"]) }),
    ];
    expect(placeTasks([task("t")], nodes)[0]?.nodeId).toBe("warm");
    expect(placeTasks([task("t", { appId: "other" })], nodes)[0]?.nodeId).toBe("idle");
  });

  it("gives work to a node that keeps losing it only when nothing else fits", () => {
    const nodes = [node("flaky", [["A", 24]], { reliability: 0.5, warmAppIds: new Set(["app"]) }), node("steady", [["A", 24]])];
    expect(placeTasks([task("1")], nodes)[0]?.nodeId).toBe("steady");
    expect(placeTasks([task("1"), task("2")], nodes).map((p) => p.nodeId)).toEqual(["steady", "flaky"]);
  });

  it("spreads a batch over free GPUs and leaves the rest queued, first come first served", () => {
    const nodes = [node("a", [["A", 24]]), node("b", [["A", 24]])];
    const placed = placeTasks([task("1"), task("2"), task("3")], nodes);
    expect(placed.map((p) => p.taskId)).toEqual(["1", "2"]);
    expect(new Set(placed.map((p) => p.nodeId))).toEqual(new Set(["a", "b"]));
  });

  it("lets a smaller task use capacity a blocked bigger one cannot", () => {
    const nodes = [node("a", [["A", 24]])];
    const placed = placeTasks([task("big", { gpuCount: 2 }), task("big2", { gpuCount: 2 }), task("small")], nodes);
    expect(placed.map((p) => p.taskId)).toEqual(["small"]);
  });

  it("respects a node's concurrency limit, also for tasks without GPUs", () => {
    const nodes = [node("a", [], { maxConcurrent: 2 })];
    const placed = placeTasks([task("1", { gpuCount: 0 }), task("2", { gpuCount: 0 }), task("3", { gpuCount: 0 })], nodes);
    expect(placed.map((p) => p.taskId)).toEqual(["1", "2"]);
  });

  it("picks the smallest GPUs that fit, keeping big ones free", () => {
    const nodes = [node("a", [["H100", 80], ["L4", 24]])];
    expect(placeTasks([task("t", { minMemoryBytes: 20 * GiB })], nodes)).toEqual([{ taskId: "t", nodeId: "a", gpuIndices: [1] }]);
  });

  it("says why a task waits", () => {
    const busy = node("a", [["RTX 3090", 24]], { busyGpuIndices: new Set([0]), running: 1 });
    expect(queueReason(task("t"), [])).toBe("no node is connected");
    expect(queueReason(task("t", { minMemoryBytes: 80 * GiB }), [busy])).toBe(
      "no connected node can run it: it needs 1 GPU with ≥ 80 GiB on one node; it waits for one to join",
    );
    expect(queueReason(task("t", { gpuCount: 2, allowedModels: ["h100"] }), [busy])).toMatch(/needs 2 GPUs of model h100 on one node/);
    expect(queueReason(task("t"), [busy])).toBe("every node that fits is busy; it runs when a GPU frees up");
    expect(queueReason(task("t"), [node("b", [["RTX 3090", 24]])])).toBeUndefined();
  });
});

describe("placement with pools", () => {
  const pooled = (id: string, extra: Partial<TaskDemand> = {}) => task(id, { pooled: true, ...extra });
  const member = (id: string, appId = "app", accepting = true, extra: Partial<NodeCapacity> = {}) =>
    node(id, [["A", 24]], { maxConcurrent: 1, warmAppIds: new Set([appId]), pool: { appId, accepting }, ...extra });

  it("runs a pooled app's tasks only on its pool's accepting members, and nothing else there", () => {
    const nodes = [node("free", [["A", 24]]), member("mine"), member("theirs", "other"), member("leaving", "app", false)];
    expect(placeTasks([pooled("1"), pooled("2")], nodes).map((p) => p.nodeId)).toEqual(["mine"]);
    expect(placeTasks([task("plain", { appId: "plain" }), task("plain2", { appId: "plain" })], nodes).map((p) => p.nodeId)).toEqual(["free"]);
  });

  it("spreads concurrent tasks over idle warm members instead of piling them on one", () => {
    const nodes = ["a", "b", "c"].map((id) => member(id, "app", true, { maxConcurrent: 4, gpus: [0, 1, 2, 3].map((index) => ({ index, model: "a", memoryTotalBytes: 24 * GiB })) }));
    expect(new Set(placeTasks([pooled("1"), pooled("2"), pooled("3")], nodes).map((p) => p.nodeId))).toEqual(new Set(["a", "b", "c"]));
  });

  it("a pooled app blocked on its full pool does not block another pooled app", () => {
    const nodes = [member("a-node", "a", true, { running: 1, busyGpuIndices: new Set([0]) }), member("b-node", "b")];
    expect(placeTasks([pooled("1", { appId: "a" }), pooled("2", { appId: "b" })], nodes).map((p) => p.taskId)).toEqual(["2"]);
  });

  it("says a pooled task waits for its pool", () => {
    expect(queueReason(pooled("t"), [node("free", [["A", 24]])])).toMatch(/pool has no node yet: it is scaling up/);
    expect(queueReason(pooled("t"), [member("m", "app", true, { running: 1, busyGpuIndices: new Set([0]) })])).toMatch(/every node in the app's pool \(1\) is busy/);
  });

  it("takes workspaces in turns within a priority, keeping each one's order", () => {
    const ts = [
      task("a1", { workspaceId: "A" }),
      task("a2", { workspaceId: "A" }),
      task("a3", { workspaceId: "A" }),
      task("b1", { workspaceId: "B" }),
      task("hi", { workspaceId: "A", priority: 5 }),
    ].sort((x, y) => (y.priority ?? 0) - (x.priority ?? 0));
    expect(fairOrder(ts).map((t) => t.id)).toEqual(["hi", "a1", "b1", "a2", "a3"]);
    const nodes = [node("one", [["A", 24], ["A", 24]], { maxConcurrent: 2 })];
    expect(placeTasks(ts.slice(1), nodes).map((p) => p.taskId)).toEqual(["a1", "b1"]);
  });

  it("counts how many of an app's tasks an idle node runs at once", () => {
    const n = node("n", [["A", 24], ["A", 24], ["B", 12]], { maxConcurrent: 8 });
    expect(slotsOnIdleNode(n, task("t"))).toBe(3);
    expect(slotsOnIdleNode(n, task("t", { gpuCount: 2 }))).toBe(1);
    expect(slotsOnIdleNode(n, task("t", { minMemoryBytes: 16 * GiB }))).toBe(2);
    expect(slotsOnIdleNode(n, task("t", { gpuCount: 0 }))).toBe(8);
    expect(slotsOnIdleNode(n, task("t", { allowedModels: ["h100"] }))).toBe(0);
  });
});
