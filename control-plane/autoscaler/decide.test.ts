import { describe, expect, it } from "vitest";
import type { PoolPolicyRow } from "../db/schema.js";
import { type AutoscalerState, decide, type MemberView, type PoolView, type ScalingAction } from "./decide.js";

const policy = (p: Partial<PoolPolicyRow> = {}): PoolPolicyRow => ({
  minNodes: 0,
  maxNodes: 4,
  idleTimeoutMs: 1000,
  targetQueueDelayMs: 500,
  targetTasksPerNode: 0,
  scaleUpStep: 100,
  scaleDownStep: 1,
  ...p,
});

const member = (nodeId: string, m: Partial<MemberView> = {}): MemberView => ({ nodeId, state: "warm", running: 0, lastBusyAtMs: 0, online: true, ...m });

const nodeIds = (n: number, prefix = "n") => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

function pool(p: Partial<PoolView> = {}, fitting: string[] = [...nodeIds(10), ...nodeIds(10, "f"), ...nodeIds(10, "m")]): PoolView {
  return {
    appId: "a",
    workspaceId: "w1",
    policy: policy(),
    members: [],
    outsideNodes: 0,
    queued: 0,
    oldestQueuedAtMs: undefined,
    running: 0,
    recentFinished: 0,
    recentFailed: 0,
    fits: new Map(fitting.map((id) => [id, 1])),
    ...p,
  };
}

const state = (pools: PoolView[], free: string[] = []): AutoscalerState => ({
  pools,
  freeNodes: free.map((id) => ({ id, warmAppIds: new Set<string>() })),
});

type Recorded = Extract<ScalingAction, { reason: string }>;
const of = (actions: ScalingAction[], kind: ScalingAction["kind"], appId = "a") => actions.find((a) => a.kind === kind && a.appId === appId) as Recorded | undefined;

describe("decide: scaling up", () => {
  it("a task arriving at an empty pool warms a node at once", () => {
    const d = decide(state([pool({ queued: 1, oldestQueuedAtMs: 1000 })], ["n1", "n2"]), 1000);
    expect(of(d.actions, "scale_up")).toMatchObject({ nodeIds: ["n1"], from: 0, to: 1 });
    expect(d.desired.get("a")).toBe(1);
  });

  it("warms min_nodes ahead of any task", () => {
    const d = decide(state([pool({ policy: policy({ minNodes: 2 }) })], ["n1", "n2", "n3"]), 0);
    expect(of(d.actions, "scale_up")).toMatchObject({ nodeIds: ["n1", "n2"], reason: "below min_nodes (2)" });
  });

  it("does not scale up while queued tasks fit the free slots and none has waited past the target", () => {
    const p = pool({ members: [member("n0"), member("n1")], queued: 2, oldestQueuedAtMs: 900 });
    expect(decide(state([p], ["n2"]), 1000).actions).toEqual([]);
  });

  it("leaves tasks that just arrived to the scheduler, then warms nodes for a backlog before the target is reached", () => {
    const p = pool({ members: [member("n0", { running: 1 })], running: 1, queued: 3, oldestQueuedAtMs: 1000 });
    expect(decide(state([p], ["n2", "n3", "n4"]), 1050).actions).toEqual([]);
    const d = decide(state([p], ["n2", "n3", "n4"]), 1200);
    expect(of(d.actions, "scale_up")).toMatchObject({ nodeIds: ["n2", "n3", "n4"], reason: "3 tasks waiting, 0 free slots in the pool" });
  });

  it("scales up when the oldest task has waited past the target queue delay", () => {
    const p = pool({ members: [member("n0")], queued: 1, oldestQueuedAtMs: 0 });
    const d = decide(state([p], ["n2"]), 600);
    expect(of(d.actions, "scale_up")?.reason).toMatch(/waited 600 ms, target 500 ms/);
  });

  it("scales by tasks per node", () => {
    const p = pool({ policy: policy({ targetQueueDelayMs: 0, targetTasksPerNode: 2, maxNodes: 10 }), queued: 7, oldestQueuedAtMs: 0 });
    const d = decide(state([p], nodeIds(10)), 0);
    expect(of(d.actions, "scale_up")?.nodeIds).toHaveLength(4);
  });

  it("never goes past max_nodes, counting releasing members and outside nodes", () => {
    const p = pool({
      policy: policy({ maxNodes: 3 }),
      members: [member("n0", { running: 1 }), member("n1", { state: "releasing", running: 1 })],
      outsideNodes: 1,
      queued: 50,
      oldestQueuedAtMs: 0,
    });
    expect(decide(state([p], nodeIds(5, "f")), 10_000).actions.filter((a) => a.kind === "scale_up")).toEqual([]);
    const roomy = { ...p, outsideNodes: 0 };
    expect(of(decide(state([roomy], nodeIds(5, "f")), 10_000).actions, "scale_up")?.nodeIds).toHaveLength(1);
  });

  it("adds at most scale_up_step nodes a round", () => {
    const p = pool({ policy: policy({ maxNodes: 10, scaleUpStep: 2 }), queued: 100, oldestQueuedAtMs: 0 });
    expect(of(decide(state([p], nodeIds(10)), 0).actions, "scale_up")?.nodeIds).toHaveLength(2);
  });

  it("only takes nodes that fit the app, preferring one where it is still warm", () => {
    const p = pool({ queued: 1, oldestQueuedAtMs: 0 }, ["n2", "n3"]);
    const s: AutoscalerState = {
      pools: [p],
      freeNodes: [
        { id: "n1", warmAppIds: new Set() },
        { id: "n2", warmAppIds: new Set() },
        { id: "n3", warmAppIds: new Set(["a"]) },
      ],
    };
    expect(of(decide(s, 0).actions, "scale_up")?.nodeIds).toEqual(["n3"]);
  });
});

describe("decide: failing tasks", () => {
  it("an app whose recent attempts mostly failed does not grow", () => {
    const p = pool({ members: [member("n0", { running: 1 })], queued: 20, oldestQueuedAtMs: 0, running: 1, recentFinished: 6, recentFailed: 5 });
    const d = decide(state([p], nodeIds(5, "f")), 10_000);
    expect(d.actions.filter((a) => a.kind === "scale_up")).toEqual([]);
    expect(d.desired.get("a")).toBe(1);
  });

  it("still gives a failing app with an empty pool one node, so its tasks can end", () => {
    const p = pool({ queued: 20, oldestQueuedAtMs: 0, recentFinished: 10, recentFailed: 10 });
    expect(of(decide(state([p], nodeIds(5, "f")), 10_000).actions, "scale_up")?.nodeIds).toHaveLength(1);
  });

  it("a few failures among many successes do not hold scale-up", () => {
    const p = pool({ queued: 3, oldestQueuedAtMs: 0, recentFinished: 20, recentFailed: 3 });
    expect(of(decide(state([p], nodeIds(5, "f")), 10_000).actions, "scale_up")?.nodeIds).toHaveLength(3);
  });
});

describe("decide: scaling down", () => {
  it("releases idle nodes only after the idle timeout, down to zero with min 0", () => {
    const p = pool({ policy: policy({ scaleDownStep: 5 }), members: [member("n0", { lastBusyAtMs: 1000 }), member("n1", { lastBusyAtMs: 1500 })] });
    expect(decide(state([p]), 1900).actions).toEqual([]);
    expect(of(decide(state([p]), 2100).actions, "scale_down")).toMatchObject({ nodeIds: ["n0"], from: 2, to: 1 });
    expect(of(decide(state([p]), 2600).actions, "scale_down")).toMatchObject({ nodeIds: ["n0", "n1"], to: 0 });
  });

  it("keeps min_nodes however long they idle", () => {
    const p = pool({ policy: policy({ minNodes: 1, scaleDownStep: 5 }), members: [member("n0"), member("n1")] });
    expect(of(decide(state([p]), 1e9).actions, "scale_down")?.nodeIds).toHaveLength(1);
  });

  it("releases at most scale_down_step a round, and never a busy node or while tasks wait", () => {
    const members = [member("n0"), member("n1"), member("n2", { running: 1 })];
    const p = pool({ policy: policy({ scaleDownStep: 1 }), members, running: 1 });
    expect(of(decide(state([p]), 1e9).actions, "scale_down")?.nodeIds).toEqual(["n0"]);
    expect(decide(state([{ ...p, queued: 1, oldestQueuedAtMs: 1e9 }]), 1e9).actions.filter((a) => a.kind === "scale_down")).toEqual([]);
  });

  it("releases members that went offline, and lets released ones with nothing running leave", () => {
    const p = pool({ members: [member("n0", { online: false, running: 1 }), member("n1", { state: "releasing" })] });
    const d = decide(state([p]), 0);
    expect(of(d.actions, "release")).toMatchObject({ nodeIds: ["n0"], reason: "node went offline" });
    expect(of(d.actions, "leave")).toMatchObject({ nodeIds: ["n1"] });
  });

  it("sheds members above a lowered max, idle ones first", () => {
    const p = pool({ policy: policy({ maxNodes: 1 }), members: [member("n0", { running: 1 }), member("n1"), member("n2", { running: 2 })], running: 3 });
    const d = decide(state([p]), 0);
    expect(of(d.actions, "scale_down")?.nodeIds).toEqual(["n1"]);
    expect(of(d.actions, "release")?.nodeIds).toEqual(["n0"]);
  });

  it("a removed pool releases all its members", () => {
    const p = pool({ policy: null, members: [member("n0"), member("n1", { running: 1 })] });
    const d = decide(state([p]), 0);
    expect(of(d.actions, "scale_down")?.nodeIds).toEqual(["n0"]);
    expect(of(d.actions, "release")?.nodeIds).toEqual(["n1"]);
  });
});

describe("decide: several apps", () => {
  it("a burst cannot take another app's minimum: minimums are served first", () => {
    const burst = pool({ appId: "burst", workspaceId: "w1", policy: policy({ maxNodes: 10 }), queued: 100, oldestQueuedAtMs: 0 });
    const steady = pool({ appId: "steady", workspaceId: "w1", policy: policy({ minNodes: 2 }) });
    const d = decide(state([burst, steady], nodeIds(3)), 10_000);
    expect(of(d.actions, "scale_up", "steady")?.nodeIds).toHaveLength(2);
    expect(of(d.actions, "scale_up", "burst")?.nodeIds).toHaveLength(1);
  });

  it("never releases another pool's minimum for a burst", () => {
    const steady = pool({ appId: "steady", workspaceId: "w2", policy: policy({ minNodes: 2, idleTimeoutMs: 1e12 }), members: [member("n0"), member("n1")] });
    const burst = pool({ appId: "burst", workspaceId: "w1", policy: policy({ maxNodes: 10 }), queued: 100, oldestQueuedAtMs: 0 });
    const d = decide(state([burst, steady]), 10_000);
    expect(d.actions.filter((a) => a.appId === "steady")).toEqual([]);
  });

  it("shares free nodes between workspaces one at a time, fewest held first", () => {
    const a = pool({ appId: "a", workspaceId: "w1", policy: policy({ maxNodes: 10 }), queued: 100, oldestQueuedAtMs: 0 });
    const b = pool({ appId: "b", workspaceId: "w2", policy: policy({ maxNodes: 10 }), queued: 100, oldestQueuedAtMs: 0, members: [member("m0", { running: 1 })], running: 1 });
    const d = decide(state([a, b], nodeIds(5)), 10_000);
    expect(of(d.actions, "scale_up", "a")?.nodeIds).toHaveLength(3);
    expect(of(d.actions, "scale_up", "b")?.nodeIds).toHaveLength(2);
  });

  it("under contention, a workspace holding more than its share gives nodes back", () => {
    const fitting = [...nodeIds(4), "m0"];
    const hog = pool(
      { appId: "hog", workspaceId: "w1", policy: policy({ maxNodes: 10, scaleDownStep: 4 }), members: nodeIds(4).map((id) => member(id, { running: 1 })), running: 4, queued: 50, oldestQueuedAtMs: 0 },
      fitting,
    );
    const starved = pool({ appId: "starved", workspaceId: "w2", policy: policy({ maxNodes: 10 }), queued: 5, oldestQueuedAtMs: 0 }, fitting);
    const d = decide(state([hog, starved]), 10_000);
    expect(of(d.actions, "release", "hog")?.nodeIds).toHaveLength(2);
    expect(d.actions.filter((a) => a.appId === "starved")).toEqual([]);
  });
  it("a pool below its minimum gets an idle node from another workspace's surplus, never from its minimum", () => {
    const fitting = nodeIds(3);
    const rich = pool(
      { appId: "rich", workspaceId: "w1", policy: policy({ minNodes: 1, maxNodes: 10, scaleDownStep: 5, idleTimeoutMs: 1e12 }), members: [member("n0", { running: 1 }), member("n1"), member("n2")], running: 1 },
      fitting,
    );
    const needy = pool({ appId: "needy", workspaceId: "w2", policy: policy({ minNodes: 1 }) }, fitting);
    const d = decide(state([rich, needy]), 10_000);
    expect(of(d.actions, "scale_down", "rich")?.nodeIds).toHaveLength(1);
    expect(of(d.actions, "scale_down", "rich")?.reason).toMatch(/contention/);
    expect(d.actions.filter((a) => a.appId === "rich" && a.nodeIds.includes("n0"))).toEqual([]);
  });
});
