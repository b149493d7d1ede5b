import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PoolMemberState, type PoolStatus } from "../../gen/ngpu/v1/pool_pb.js";
import { TaskState } from "../../gen/ngpu/v1/task_pb.js";
import { Code, ConnectError, type NgpuClient, type PoolPolicyInit } from "../../sdk/index.js";
import type { Worker } from "../../worker/worker.js";
import { startTestNetwork, type TestNetwork } from "../helpers/network.js";
import { builtin, client } from "../helpers/sdk.js";
import { eventually, startTestWorker } from "../helpers/workers.js";
import { runCli } from "../helpers/cli.js";

/** Elastic pools end to end: real control plane, Postgres, NATS and in-process workers. */
describe("app pools", () => {
  let net: TestNetwork;
  let ngpu: NgpuClient;
  const workers: Worker[] = [];

  beforeAll(async () => {
    net = await startTestNetwork({ autoscalerIntervalMs: 100 });
    ngpu = client(net.url, net.apiKey);
    for (let i = 0; i < 4; i++) workers.push(await startTestWorker(net, ["NVIDIA GeForce RTX 3090:24GiB"], { name: `w${i}` }));
  });
  afterAll(async () => {
    await Promise.all(workers.map((w) => w.shutdown(0)));
    await ngpu.close();
    await net.close();
  });

  const deployPooled = (name: string, pool: PoolPolicyInit, env: Record<string, string> = { COLD_START_MS: "200" }, api = ngpu) =>
    api.apps.deploy({ name, runtime: builtin("sleep"), gpu: { count: 1 }, env, pool, maxAttempts: 1 });
  const members = (s: PoolStatus) => s.members.filter((m) => m.state !== PoolMemberState.RELEASING).length;
  /** Waits until the app's pool holds nothing, so the next test starts from free nodes. */
  const emptied = (app: string, api = ngpu) =>
    eventually(async () => ((await api.pools.status(app)).members.length === 0 ? true : undefined), 15_000, `${app}'s pool to empty`);

  async function expectInvalid(promise: Promise<unknown>, field: string) {
    const err = await promise.then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(err?.code).toBe(Code.InvalidArgument);
    expect(err?.rawMessage).toMatch(new RegExp(`^${field.replace(/\./g, "\\.")}: `));
  }

  it("rejects bad pool policies with INVALID_ARGUMENT naming the field, and writes nothing", async () => {
    const base = { maxNodes: 2, targetQueueDelayMs: 500 };
    await expectInvalid(deployPooled("bad", { ...base, minNodes: 3 }), "pool.min_nodes");
    await expectInvalid(deployPooled("bad", { ...base, minNodes: -1 }), "pool.min_nodes");
    await expectInvalid(deployPooled("bad", { ...base, maxNodes: 0, minNodes: 1 }), "pool.max_nodes");
    await expectInvalid(deployPooled("bad", { ...base, maxNodes: 0 }), "pool.max_nodes");
    await expectInvalid(deployPooled("bad", { ...base, idleTimeoutMs: -1 }), "pool.idle_timeout_ms");
    await expectInvalid(deployPooled("bad", { ...base, targetQueueDelayMs: -5 }), "pool.target_queue_delay_ms");
    await expectInvalid(deployPooled("bad", { maxNodes: 2 }), "pool.target_queue_delay_ms");
    await expectInvalid(deployPooled("bad", { ...base, targetTasksPerNode: -1 }), "pool.target_tasks_per_node");
    await expectInvalid(deployPooled("bad", { ...base, scaleUpStep: -1 }), "pool.scale_up_step");
    await expectInvalid(deployPooled("bad", { ...base, scaleDownStep: -2 }), "pool.scale_down_step");
    await expect(ngpu.apps.get("bad")).rejects.toMatchObject({ code: Code.NotFound });

    const { app } = await deployPooled("policy-ok", base);
    await expectInvalid(ngpu.apps.update({ app: "policy-ok", pool: { maxNodes: 1, minNodes: 2, targetTasksPerNode: 1 } }), "pool.min_nodes");
    await expectInvalid(ngpu.apps.update({ app: "policy-ok", pool: base, removePool: true }), "remove_pool");
    const same = await ngpu.apps.get("policy-ok");
    expect(same.pool?.maxNodes).toBe(2);
    // Changing only the pool keeps the version: the instance is the same.
    const updated = await ngpu.apps.update({ app: "policy-ok", pool: { ...base, maxNodes: 3 } });
    expect(updated.version).toBe(app.version);
    expect(updated.pool).toMatchObject({ maxNodes: 3, scaleDownStep: 1, scaleUpStep: 3 });
    const removed = await ngpu.apps.update({ app: "policy-ok", removePool: true });
    expect(removed.pool).toBeUndefined();
  });

  it("a task to an empty pool waits (saying why), wakes the pool, and completes; the pool scales to zero after the idle timeout", async () => {
    await deployPooled("zero", { minNodes: 0, maxNodes: 2, idleTimeoutMs: 800, targetQueueDelayMs: 1000 }, { COLD_START_MS: "400" });
    expect(members(await ngpu.pools.status("zero"))).toBe(0);
    const { task } = await ngpu.tasks.submit({ app: "zero", input: { seconds: 0.1 } });
    const waiting = await ngpu.tasks.get(task.id);
    if (waiting.state === TaskState.QUEUED) expect(waiting.queueReason).toMatch(/pool/);
    const done = await ngpu.tasks.wait(task.id, { timeoutMs: 15_000 });
    expect(done.state).toBe(TaskState.SUCCEEDED);

    const events = (await ngpu.pools.events({ app: "zero" })).events;
    const up = events.find((e) => e.kind === "scale_up");
    expect(up).toMatchObject({ fromNodes: 0, toNodes: 1 });
    expect(up?.reason).toMatch(/waiting|waited/);
    // The cold start is measured per node and shown.
    const warm = await eventually(async () => (await ngpu.pools.events("zero")).events.find((e) => e.kind === "warm"));
    expect(warm.reason).toMatch(/instance ready in \d+ ms/);
    expect(Number((await ngpu.pools.status("zero")).meanColdStartMs)).toBeGreaterThanOrEqual(350);

    // Idle past the timeout with min 0: no node left, and the worker's instance is gone too.
    await emptied("zero");
    const status = await ngpu.pools.status("zero");
    expect(status).toMatchObject({ desiredNodes: 0, warmNodes: 0, coldStartingNodes: 0, queuedTasks: 0 });
    const down = (await ngpu.pools.events("zero", { pageSize: 50 })).events.find((e) => e.kind === "scale_down");
    expect(down).toMatchObject({ fromNodes: 1, toNodes: 0 });
    expect(down?.reason).toMatch(/idle/);
    await eventually(async () => {
      for await (const node of ngpu.nodes.listAll()) if (node.warmAppIds.includes(status.appId)) return undefined;
      return true;
    }, 10_000, "the instance to stop on the worker");
  });

  it("never runs an app's tasks on more nodes than max_nodes under a burst", async () => {
    await deployPooled("capped", { minNodes: 0, maxNodes: 2, idleTimeoutMs: 300, targetQueueDelayMs: 50 });
    let peak = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const s = await ngpu.pools.status("capped");
        peak = Math.max(peak, s.members.length);
        await new Promise((r) => setTimeout(r, 30));
      }
    })();
    const submitted = await Promise.all(Array.from({ length: 12 }, (_, i) => ngpu.tasks.submit({ app: "capped", input: { seconds: 0.15, i } })));
    const done = await Promise.all(submitted.map(({ task }) => ngpu.tasks.wait(task.id, { timeoutMs: 30_000 })));
    sampling = false;
    await sampler;
    expect(done.every((t) => t.state === TaskState.SUCCEEDED)).toBe(true);
    expect(new Set(done.map((t) => t.nodeId)).size).toBe(2);
    expect(peak).toBeLessThanOrEqual(2);
    await emptied("capped");
  });

  it("spreads concurrent tasks over idle warm nodes, starting warm", async () => {
    await deployPooled("spread", { minNodes: 3, maxNodes: 3, idleTimeoutMs: 0, targetQueueDelayMs: 10_000 }, { COLD_START_MS: "300" });
    await eventually(async () => ((await ngpu.pools.status("spread")).warmNodes === 3 ? true : undefined), 10_000, "3 warm nodes");
    const submitted = await Promise.all(Array.from({ length: 3 }, (_, i) => ngpu.tasks.submit({ app: "spread", input: { seconds: 0.3, i } })));
    const done = await Promise.all(submitted.map(({ task }) => ngpu.tasks.wait(task.id, { timeoutMs: 15_000 })));
    expect(done.every((t) => t.state === TaskState.SUCCEEDED)).toBe(true);
    expect(new Set(done.map((t) => t.nodeId)).size).toBe(3);
    // Warmed ahead of need: no task waited for a cold start.
    expect(done.map((t) => Number(t.coldStartMs))).toEqual([0, 0, 0]);
    await ngpu.apps.update({ app: "spread", removePool: true });
    await emptied("spread");
  });

  it("failing tasks do not scale the pool up", async () => {
    await deployPooled("failing", { minNodes: 0, maxNodes: 4, idleTimeoutMs: 5_000, targetTasksPerNode: 1 }, {});
    // A few failures first, one at a time (one node is enough for one task).
    for (let i = 0; i < 4; i++) {
      const { task } = await ngpu.tasks.submit({ app: "failing", input: { seconds: 0, fail: "bad weights" } });
      const done = await ngpu.tasks.wait(task.id, { timeoutMs: 15_000 });
      expect(`${TaskState[done.state]} ${done.error}`).toBe("FAILED bad weights");
    }
    const before = (await ngpu.pools.status("failing")).members.length;
    const upsBefore = (await ngpu.pools.events({ app: "failing" })).events.filter((e) => e.kind === "scale_up").length;
    expect(before).toBeGreaterThanOrEqual(1);
    // Now 8 at once: with one task per node as the target they would take 4 nodes, but they keep failing.
    let peak = 0;
    const submitted = await Promise.all(Array.from({ length: 8 }, () => ngpu.tasks.submit({ app: "failing", input: { seconds: 0.1, fail: "bad weights" } })));
    for (const { task } of submitted) {
      await ngpu.tasks.wait(task.id, { timeoutMs: 15_000 });
      peak = Math.max(peak, (await ngpu.pools.status("failing")).members.length);
    }
    expect(peak).toBeLessThanOrEqual(before);
    expect((await ngpu.pools.events({ app: "failing" })).events.filter((e) => e.kind === "scale_up")).toHaveLength(upsBefore);
    expect((await ngpu.pools.status("failing")).desiredNodes).toBeLessThanOrEqual(before);
    await ngpu.apps.update({ app: "failing", removePool: true });
    await emptied("failing");
  });

  it("two apps of two workspaces under contention: each keeps its minimum, the burst gets the rest", async () => {
    const other = await net.newWorkspace();
    const rival = client(net.url, other.apiKey);
    try {
      await deployPooled("steady", { minNodes: 2, maxNodes: 4, idleTimeoutMs: 60_000, targetQueueDelayMs: 10_000 });
      await deployPooled("burst", { minNodes: 1, maxNodes: 4, idleTimeoutMs: 300, targetQueueDelayMs: 50 }, { COLD_START_MS: "100" }, rival);
      await eventually(async () => ((await ngpu.pools.status("steady")).warmNodes === 2 ? true : undefined), 10_000, "steady's minimum");
      let steadyLow = 2;
      let burstHigh = 0;
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          steadyLow = Math.min(steadyLow, members(await ngpu.pools.status("steady")));
          burstHigh = Math.max(burstHigh, (await rival.pools.status("burst")).members.length);
          await new Promise((r) => setTimeout(r, 30));
        }
      })();
      const burst = await Promise.all(Array.from({ length: 16 }, (_, i) => rival.tasks.submit({ app: "burst", input: { seconds: 0.1, i } })));
      // Meanwhile steady's own tasks run on its warm nodes.
      const mine = await Promise.all(Array.from({ length: 2 }, (_, i) => ngpu.tasks.run({ app: "steady", input: { seconds: 0.1, i } })));
      const done = await Promise.all(burst.map(({ task }) => rival.tasks.wait(task.id, { timeoutMs: 30_000 })));
      sampling = false;
      await sampler;
      expect(done.every((t) => t.state === TaskState.SUCCEEDED)).toBe(true);
      expect(mine.every(({ task }) => task.state === TaskState.SUCCEEDED && Number(task.coldStartMs) === 0)).toBe(true);
      expect(steadyLow).toBe(2);
      expect(burstHigh).toBe(2);
      await rival.apps.update({ app: "burst", removePool: true });
      await ngpu.apps.update({ app: "steady", removePool: true });
      await emptied("burst", rival);
      await emptied("steady");
    } finally {
      await rival.close();
    }
  });
  it("shows and sets a pool from the CLI, and lists its scaling decisions", async () => {
    const cli = (args: string[]) => runCli(args, { connection: net });
    await ngpu.apps.deploy({ name: "cli-pool", runtime: builtin("echo"), gpu: { count: 1 } });
    const set = await cli(["apps", "pool", "cli-pool", "--min", "1", "--max", "2", "--queue-delay", "1s", "--idle-timeout", "1s"]);
    expect(set.code).toBe(0);
    expect(set.stdout).toMatch(/policy: +min 1, max 2, idle timeout 1s, scale up when a task waits 1s/);
    await eventually(async () => ((await ngpu.pools.status("cli-pool")).warmNodes === 1 ? true : undefined), 10_000, "cli-pool warm");
    const shown = await cli(["apps", "pool", "cli-pool"]);
    expect(shown.stdout).toMatch(/1 warm \(0 busy\)/);
    expect(shown.stdout).toMatch(/scale_up +0 → 1 +below min_nodes \(1\)/);
    const events = await cli(["apps", "pool-events", "cli-pool", "--json"]);
    expect(JSON.parse(events.stdout).events.map((e: { kind: string }) => e.kind)).toEqual(["warm", "scale_up"]);
    const bad = await cli(["apps", "pool", "cli-pool", "--min", "3"]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/pool\.min_nodes: must not exceed max_nodes \(2\)/);
    await ngpu.apps.update({ app: "cli-pool", removePool: true });
    await emptied("cli-pool");
    // Each CLI run is a fresh Node process loading TypeScript: slow on a busy machine.
  }, 180_000);
});
