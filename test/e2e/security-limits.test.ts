import { createClient } from "@connectrpc/connect";
import { createConnectTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { setPrice } from "../../control-plane/db/prices.js";
import { LimitService } from "../../gen/ngpu/v1/limits_pb.js";
import { Outcome } from "../../gen/ngpu/v1/worker_pb.js";
import { Code, ConnectError, type NgpuClient, TaskState } from "../../sdk/index.js";
import { type FakeWorker, startFakeWorker } from "../helpers/fake-worker.js";
import { startTestNetwork, type TestNetwork } from "../helpers/network.js";
import { builtin, client } from "../helpers/sdk.js";
import { eventually } from "../helpers/workers.js";

/** One USD a GPU-second: easy sums. */
const PRICE = 1_000_000_000;

async function failure(call: () => Promise<unknown>): Promise<ConnectError> {
  try {
    await call();
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("the call succeeded; expected it to fail");
}

describe("security: limits that protect users' money", () => {
  let net: TestNetwork;
  let model = 0;
  const closers: Array<() => Promise<void> | void> = [];
  const fakes: FakeWorker[] = [];

  /** A fresh workspace (its own limits and spend), its client and a limits client. */
  async function workspace() {
    const ws = await net.newWorkspace();
    const ngpu = client(net.url, ws.apiKey);
    const sessionManager = new Http2SessionManager(net.url);
    const limits = createClient(LimitService, createConnectTransport({ baseUrl: net.url, httpVersion: "2", sessionManager, interceptors: [(next) => (req) => (req.header.set("authorization", `Bearer ${ws.apiKey}`), next(req))] }));
    closers.push(() => ngpu.close(), () => sessionManager.abort());
    return { ...ws, ngpu, limits };
  }

  /** A priced GPU model of its own, a fake worker with it, and an app that runs only there. */
  async function pricedProvider(ngpu: NgpuClient) {
    const gpuModel = `NVIDIA Limits GPU ${++model}`;
    await setPrice(net.cp.db, gpuModel, PRICE, new Date(Date.now() - 60_000));
    const app = `priced-${model}`;
    await ngpu.apps.deploy({ name: app, runtime: builtin("echo"), gpu: { count: 1, allowedModels: [gpuModel] } });
    const worker = await startFakeWorker(net.url, {
      enrollmentToken: net.enrollmentToken,
      name: `provider-${model}`,
      gpus: [{ index: 0, uuid: `GPU-limits-${model}`, model: gpuModel, memoryTotalBytes: 24n * 1024n ** 3n }],
      runtimes: ["builtin"],
    });
    fakes.push(worker);
    return { app, worker };
  }

  beforeAll(async () => {
    net = await startTestNetwork();
  });
  afterEach(() => {
    for (const f of fakes.splice(0)) f.kill();
  });
  afterAll(async () => {
    for (const c of closers) await c();
    await net.close();
  });

  it("refuses a task over the workspace's concurrency limit, naming the limit", async () => {
    const { ngpu, limits } = await workspace();
    await ngpu.apps.deploy({ name: "echo", runtime: builtin("echo"), gpu: { count: 1, allowedModels: ["no such GPU"] } });
    await limits.setLimits({ limits: { maxConcurrentTasks: 2 } });
    await ngpu.tasks.submit({ app: "echo", input: {} });
    const { task } = await ngpu.tasks.submit({ app: "echo", input: {} });
    const err = await failure(() => ngpu.tasks.submit({ app: "echo", input: {} }));
    expect(err.code).toBe(Code.ResourceExhausted);
    expect(err.rawMessage).toMatch(/^concurrency limit: 2 unfinished tasks, the workspace's limit is 2/);
    // A finished task makes room.
    await ngpu.tasks.cancel(task.id);
    await ngpu.tasks.submit({ app: "echo", input: {} });
    expect((await limits.getLimits({})).unfinishedTasks).toBe(2);
  });

  it("concurrent submits cannot pass a limit together", async () => {
    const { ngpu, limits } = await workspace();
    await ngpu.apps.deploy({ name: "echo", runtime: builtin("echo"), gpu: { count: 1, allowedModels: ["no such GPU"] } });
    await limits.setLimits({ limits: { maxConcurrentTasks: 3 } });
    const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => ngpu.tasks.submit({ app: "echo", input: { i } })));
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(3);
    for (const r of results) if (r.status === "rejected") expect(ConnectError.from(r.reason).code).toBe(Code.ResourceExhausted);
  });

  it("refuses submits over the workspace's rate limit", async () => {
    const { ngpu, limits } = await workspace();
    await ngpu.apps.deploy({ name: "echo", runtime: builtin("echo"), gpu: { count: 1, allowedModels: ["no such GPU"] } });
    await limits.setLimits({ limits: { maxSubmitsPerMinute: 3 } });
    for (let i = 0; i < 3; i++) await ngpu.tasks.submit({ app: "echo", input: { i } });
    const err = await failure(() => ngpu.tasks.submit({ app: "echo", input: {} }));
    expect(err.code).toBe(Code.ResourceExhausted);
    expect(err.rawMessage).toMatch(/^submit rate limit: 3 tasks per minute/);
  });

  it("only a full key changes limits, and they are checked field by field", async () => {
    const { ngpu, limits } = await workspace();
    const ro = await ngpu.keys.create({ scope: "read-only" });
    const roClient = createClient(LimitService, createConnectTransport({ baseUrl: net.url, httpVersion: "1.1", interceptors: [(next) => (req) => (req.header.set("authorization", `Bearer ${ro.secret}`), next(req))] }));
    expect((await failure(() => roClient.setLimits({ limits: { maxConcurrentTasks: 1 } }))).code).toBe(Code.PermissionDenied);
    await roClient.getLimits({});
    const bad = await failure(() => limits.setLimits({ limits: { monthlySpendCapNanoUsd: -1n } }));
    expect(bad.code).toBe(Code.InvalidArgument);
    expect(bad.rawMessage).toMatch(/^limits\.monthly_spend_cap_nano_usd:/);
    const task = await failure(() => ngpu.tasks.submit({ app: "echo", input: {}, maxCostNanoUsd: -5n }));
    expect(task.code).toBe(Code.InvalidArgument);
  });

  it("refuses new tasks once the monthly spend cap is reached, saying why", async () => {
    const { ngpu, limits } = await workspace();
    const { app, worker } = await pricedProvider(ngpu);
    const { task } = await ngpu.tasks.submit({ app, input: {} });
    const a = await worker.nextAssignment();
    worker.started(a);
    await eventually(async () => ((await ngpu.tasks.get(task.id)).state === TaskState.RUNNING ? true : undefined));
    worker.finish(a, Outcome.SUCCEEDED, { startedAtMs: Date.now() - 200, endedAtMs: Date.now() });
    await ngpu.tasks.wait(task.id, { timeoutMs: 10_000 });
    const spent = (await limits.getLimits({})).monthSpendNanoUsd;
    expect(spent).toBeGreaterThan(0n);
    // A cap above the spend still admits tasks; at or below it, none.
    await limits.setLimits({ limits: { monthlySpendCapNanoUsd: spent + 1n } });
    const { task: allowed } = await ngpu.tasks.submit({ app, input: {} });
    await ngpu.tasks.cancel(allowed.id);
    await limits.setLimits({ limits: { monthlySpendCapNanoUsd: spent } });
    const before = await net.cp.db.selectFrom("tasks").select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirstOrThrow();
    const err = await failure(() => ngpu.tasks.submit({ app, input: {} }));
    expect(err.code).toBe(Code.ResourceExhausted);
    expect(err.rawMessage).toMatch(/^monthly spend cap reached: \$[\d.]+ spent this month \(UTC\) of a \$[\d.]+ cap/);
    const after = await net.cp.db.selectFrom("tasks").select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirstOrThrow();
    expect(Number(after.n)).toBe(Number(before.n));
  });

  it("cancels a running task when its spend cap is reached and bills exactly up to the cap", async () => {
    const { ngpu } = await workspace();
    const { app, worker } = await pricedProvider(ngpu);
    const cap = 1_500_000_000n; // 1.5 USD: 1.5 s on one GPU at 1 USD/s
    const { task } = await ngpu.tasks.submit({ app, input: {}, maxCostNanoUsd: cap });
    expect(task.maxCostNanoUsd).toBe(cap);
    const a = await worker.nextAssignment();
    worker.started(a);
    // The worker would run on; the control plane stops it at the cap.
    const cancel = await worker.waitForCancel(a.attemptId, 10_000);
    expect(cancel.reason).toMatch(/spend cap/);
    const done = await ngpu.tasks.get(task.id);
    expect(done.state).toBe(TaskState.CANCELLED);
    expect(done.error).toMatch(/^spend cap of 1.5 USD reached/);
    expect(Number(done.executionMs)).toBe(1500);
    const usage = await net.cp.db.selectFrom("usage_records").selectAll().where("task_id", "=", task.id).execute();
    expect(usage.map((u) => [Number(u.execution_ms), Number(u.cost_nano_usd)])).toEqual([[1500, 1_500_000_000]]);
    // Its late report changes nothing.
    worker.finish(a, Outcome.SUCCEEDED, { startedAtMs: Date.now() - 5_000, endedAtMs: Date.now() });
    await eventually(() => (worker.rejections.some((r) => /no longer current|unknown, superseded/.test(r)) ? true : undefined));
    const again = await net.cp.db.selectFrom("usage_records").select("cost_nano_usd").where("task_id", "=", task.id).execute();
    expect(again.map((u) => Number(u.cost_nano_usd))).toEqual([1_500_000_000]);
  });

  it("a worker that reports past the cap before the control plane stops it is billed only up to the cap", async () => {
    const { ngpu } = await workspace();
    const { app, worker } = await pricedProvider(ngpu);
    const cap = 10_000_000n; // 10 ms at 1 USD/s
    const { task } = await ngpu.tasks.submit({ app, input: {}, maxCostNanoUsd: cap });
    const a = await worker.nextAssignment();
    worker.started(a);
    // Running, or already stopped at the cap: 10 ms is soon over on a loaded machine.
    await eventually(async () => ([TaskState.RUNNING, TaskState.CANCELLED].includes((await ngpu.tasks.get(task.id)).state) ? true : undefined));
    // Reports at once, claiming it ran since long before: more than the cap buys.
    worker.finish(a, Outcome.SUCCEEDED, { startedAtMs: Date.now() - 60_000, endedAtMs: Date.now() });
    const usage = await eventually(async () => (await net.cp.db.selectFrom("usage_records").selectAll().where("task_id", "=", task.id).execute())[0]);
    // Whichever came first, the worker's report or the control plane's stop, the bill is the cap.
    expect(Number(usage.cost_nano_usd)).toBe(Number(cap));
    expect(Number(usage.execution_ms)).toBe(10);
  });

  it("a published app's fee is fixed at submit and counted inside the task's cap", async () => {
    const author = await workspace();
    const caller = await workspace();
    const { app, worker } = await pricedProvider(author.ngpu);
    await author.ngpu.apps.update({ app, public: true, callFeeNanoUsd: 500_000_000 }); // 0.5 USD a call
    const ref = `${author.workspaceId}/${app}`;
    // The fee alone is past the cap: refused, naming the cap.
    const tooLow = await failure(() => caller.ngpu.tasks.submit({ app: ref, input: {}, maxCostNanoUsd: 10_000_000n }));
    expect(tooLow.code).toBe(Code.InvalidArgument);
    expect(tooLow.message).toMatch(/max_cost_nano_usd.*per-call fee of 500000000/);
    // 2 USD cap, 0.5 USD fee: 1.5 s of execution left at 1 USD/s.
    const cap = 2_000_000_000n;
    const submitted = [await caller.ngpu.tasks.submit({ app: ref, input: {}, maxCostNanoUsd: cap }), await caller.ngpu.tasks.submit({ app: ref, input: {}, maxCostNanoUsd: cap })];
    // The author raises the fee after the calls were made: they keep the fee they were submitted at.
    await author.ngpu.apps.update({ app, callFeeNanoUsd: 1_000_000_000 });
    expect((await failure(() => caller.ngpu.tasks.submit({ app: ref, input: {}, maxCostNanoUsd: 1_000_000_000n }))).code).toBe(Code.InvalidArgument);
    // One finishes quickly: charged the fee fixed at submit.
    const quick = await worker.nextAssignment();
    const startedAt = Date.now();
    worker.started(quick);
    await eventually(async () => ((await caller.ngpu.tasks.get(quick.taskId)).state === TaskState.RUNNING ? true : undefined));
    worker.finish(quick, Outcome.SUCCEEDED, { startedAtMs: startedAt, endedAtMs: Date.now() });
    await eventually(async () => ((await caller.ngpu.tasks.get(quick.taskId)).state === TaskState.SUCCEEDED ? true : undefined));
    const quickCost = await caller.ngpu.usage.taskCost(quick.taskId);
    expect(quickCost.feeNanoUsd).toBe(500_000_000n);
    expect(quickCost.totalNanoUsd).toBeLessThanOrEqual(cap);
    // The other runs on: stopped when the execution budget left after the fee is spent.
    const slow = await worker.nextAssignment();
    expect(submitted.map((s) => s.task.id).sort()).toEqual([quick.taskId, slow.taskId].sort());
    worker.started(slow);
    await worker.waitForCancel(slow.attemptId, 10_000);
    const stopped = await caller.ngpu.tasks.get(slow.taskId);
    expect(stopped.state).toBe(TaskState.CANCELLED);
    expect(Number(stopped.executionMs)).toBe(1500);
    const slowCost = await caller.ngpu.usage.taskCost(slow.taskId);
    expect([slowCost.costNanoUsd, slowCost.feeNanoUsd]).toEqual([1_500_000_000n, 0n]);
  });

  it("a cap too small to buy a millisecond ends a fast task CANCELLED, its views agreeing with the bill", async () => {
    const { ngpu } = await workspace();
    const { app, worker } = await pricedProvider(ngpu);
    const { task } = await ngpu.tasks.submit({ app, input: {}, maxCostNanoUsd: 1n });
    const a = await worker.nextAssignment();
    // It reports success (16 ms) before the control plane saw it start, so before any monitor could stop it.
    const now = Date.now();
    worker.finish(a, Outcome.SUCCEEDED, { startedAtMs: now - 16, endedAtMs: now });
    const done = await eventually(async () => {
      const t = await ngpu.tasks.get(task.id);
      return t.state === TaskState.QUEUED || t.state === TaskState.ASSIGNED || t.state === TaskState.STARTING || t.state === TaskState.RUNNING ? undefined : t;
    });
    expect(done.state).toBe(TaskState.CANCELLED);
    expect(done.error).toMatch(/^spend cap of 0.000000001 USD reached/);
    expect(done.output).toBeUndefined();
    const cost = await ngpu.usage.taskCost(task.id);
    expect([Number(done.executionMs), cost.costNanoUsd, cost.feeNanoUsd]).toEqual([0, 0n, 0n]);
    expect(cost.attempts.map((r) => Number(r.executionMs))).toEqual([Number(done.executionMs)]);
    // A failure past the cap keeps its verdict, and shows the time billed too.
    const { task: failing } = await ngpu.tasks.submit({ app, input: {}, maxCostNanoUsd: 1n });
    const b = await worker.nextAssignment();
    worker.finish(b, Outcome.FAILED, { error: "boom", retryable: false, startedAtMs: Date.now() - 16, endedAtMs: Date.now() });
    const failed = await eventually(async () => {
      const t = await ngpu.tasks.get(failing.id);
      return t.state === TaskState.FAILED ? t : undefined;
    });
    const failedCost = await ngpu.usage.taskCost(failing.id);
    expect(failedCost.attempts.map((r) => Number(r.executionMs))).toEqual([Number(failed.executionMs)]);
  });
});
