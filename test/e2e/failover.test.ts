import { Code } from "@connectrpc/connect";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { NodeState } from "../../gen/ngpu/v1/node_pb.js";
import { TaskState } from "../../gen/ngpu/v1/task_pb.js";
import { Outcome } from "../../gen/ngpu/v1/worker_pb.js";
import { type NgpuClient, taskOutput } from "../../sdk/index.js";
import { type FakeWorker, startFakeWorker } from "../helpers/fake-worker.js";
import { startTestNetwork, type TestNetwork } from "../helpers/network.js";
import { builtin, client } from "../helpers/sdk.js";
import { eventually, startTestWorker } from "../helpers/workers.js";

const LOST_AFTER_MS = 1500;

describe("failures: liveness, fencing, retries, timeouts, cancel, drain", () => {
  let net: TestNetwork;
  let ngpu: NgpuClient;
  let fakes: FakeWorker[] = [];
  let gpuModel = 0;

  beforeAll(async () => {
    net = await startTestNetwork({ lostAfterMs: LOST_AFTER_MS, reconnectGraceMs: 500 });
    ngpu = client(net.url, net.apiKey);
  });
  afterEach(() => {
    for (const f of fakes) f.kill();
    fakes = [];
  });
  afterAll(async () => {
    await ngpu.close();
    await net.close();
  });

  /** A fake worker with one GPU of a model no other test uses, and an app pinned to that model. */
  async function isolated(options: { maxAttempts?: number; timeoutMs?: number; queueTtlMs?: number } = {}) {
    const model = `NVIDIA Test GPU ${++gpuModel}`;
    const app = `app-${gpuModel}`;
    await ngpu.apps.deploy({ name: app, runtime: builtin("echo"), gpu: { count: 1, allowedModels: [model] }, ...options });
    const join = async (nodeId = "", running: Array<{ taskId: string; attemptId: string; fencingToken: bigint }> = []) => {
      const f = await startFakeWorker(net.url, {
        enrollmentToken: net.enrollmentToken,
        nodeId,
        name: `fake-${gpuModel}`,
        gpus: [{ index: 0, uuid: `GPU-fake-${gpuModel}`, model, memoryTotalBytes: 24n * 1024n ** 3n }],
        running,
      });
      fakes.push(f);
      return f;
    };
    return { app, join };
  }

  const state = async (id: string) => (await ngpu.tasks.get(id)).state;
  const until = (id: string, s: TaskState, timeoutMs = 10_000) => eventually(async () => ((await state(id)) === s ? true : undefined), timeoutMs, `task ${TaskState[s]}`);

  it("keeps the tasks of a worker silent for less than the threshold", async () => {
    const { app, join } = await isolated();
    const w = await join();
    const { task } = await ngpu.tasks.submit({ app, input: {} });
    const a = await w.nextAssignment();
    w.started(a);
    await until(task.id, TaskState.RUNNING);
    w.setHeartbeats(false);
    await new Promise((r) => setTimeout(r, LOST_AFTER_MS * 0.6));
    w.setHeartbeats(true);
    expect(await state(task.id)).toBe(TaskState.RUNNING);
    w.finish(a, Outcome.SUCCEEDED);
    await until(task.id, TaskState.SUCCEEDED);
    const done = await ngpu.tasks.get(task.id);
    expect(done.attemptCount).toBe(1);
    expect((await ngpu.nodes.get(w.nodeId)).state).toBe(NodeState.ONLINE);
  });

  it("moves a silent node's task elsewhere, rejects the old attempt's late result, and stops it when the node returns", async () => {
    const { app, join } = await isolated();
    const first = await join();
    const { task } = await ngpu.tasks.submit({ app, input: { n: 1 } });
    const a1 = await first.nextAssignment();
    first.started(a1);
    await until(task.id, TaskState.RUNNING);
    first.setHeartbeats(false);
    const second = await join();
    // Declared lost after the threshold; the task runs again on the other node.
    const a2 = await second.nextAssignment(LOST_AFTER_MS + 5_000);
    expect(a2.taskId).toBe(task.id);
    expect(a2.fencingToken).toBeGreaterThan(a1.fencingToken);
    expect((await ngpu.nodes.get(first.nodeId)).state).toBe(NodeState.LOST);
    second.started(a2);

    // The first node wakes up and reports a result for its superseded attempt: refused.
    first.finish(a1, Outcome.SUCCEEDED);
    await eventually(() => (first.rejections.some((r) => /no longer current/.test(r)) ? true : undefined));
    expect(await state(task.id)).toBe(TaskState.RUNNING);

    // It reconnects, still claiming the old attempt: told to stop it.
    first.kill();
    const back = await join(first.nodeId, [{ taskId: task.id, attemptId: a1.attemptId, fencingToken: a1.fencingToken }]);
    expect(back.nodeId).toBe(first.nodeId);
    await back.waitForCancel(a1.attemptId);

    second.finish(a2, Outcome.SUCCEEDED);
    const done = await ngpu.tasks.wait(task.id, { timeoutMs: 10_000 });
    expect(done.state).toBe(TaskState.SUCCEEDED);
    expect(done.nodeId).toBe(second.nodeId);
    const attempts = (await ngpu.tasks.get(task.id)).attempts;
    expect(attempts.map((x) => [x.id, x.state])).toEqual([
      [a1.attemptId, "LOST"],
      [a2.attemptId, "SUCCEEDED"],
    ]);
    const node = await ngpu.nodes.get(first.nodeId);
    expect(Number(node.lostAttempts)).toBe(1);
    expect(node.reliability).toBeLessThan(1);
  });

  it("retries a retryable failure with backoff up to max attempts, then fails", async () => {
    const { app, join } = await isolated({ maxAttempts: 2 });
    const w = await join();
    const { task } = await ngpu.tasks.submit({ app, input: {} });
    const a1 = await w.nextAssignment();
    w.started(a1);
    w.finish(a1, Outcome.FAILED, { error: "instance crashed", retryable: true });
    await until(task.id, TaskState.QUEUED);
    const failedAt = Date.now();
    const a2 = await w.nextAssignment();
    // Backoff: the retry waited about a second.
    expect(Date.now() - failedAt).toBeGreaterThanOrEqual(700);
    w.started(a2);
    w.finish(a2, Outcome.FAILED, { error: "instance crashed again", retryable: true });
    const done = await ngpu.tasks.wait(task.id, { timeoutMs: 10_000 });
    expect(done.state).toBe(TaskState.FAILED);
    expect(done.attemptCount).toBe(2);
    expect(done.error).toBe("instance crashed again");
  });

  it("does not retry an error the app itself reported", async () => {
    const { app, join } = await isolated({ maxAttempts: 3 });
    const w = await join();
    const { task } = await ngpu.tasks.submit({ app, input: {} });
    const a = await w.nextAssignment();
    w.started(a);
    w.finish(a, Outcome.FAILED, { error: "CUDA out of memory", retryable: false });
    const done = await ngpu.tasks.wait(task.id, { timeoutMs: 10_000 });
    expect(done.state).toBe(TaskState.FAILED);
    expect(done.attemptCount).toBe(1);
    expect(done.error).toBe("CUDA out of memory");
  });

  it("enforces the execution timeout itself when the worker ignores cancel, billing exactly up to it", async () => {
    const { app, join } = await isolated();
    const w = await join();
    const { task } = await ngpu.tasks.submit({ app, input: {}, timeoutMs: 1000 });
    const a = await w.nextAssignment();
    w.started(a);
    const done = await ngpu.tasks.wait(task.id, { timeoutMs: 10_000 });
    expect(done.state).toBe(TaskState.TIMED_OUT);
    expect(done.error).toBe("execution timed out after 1000 ms");
    expect(Number(done.executionMs)).toBe(1000);
    expect(Number(done.gpuMs)).toBe(1000);
    expect((await w.waitForCancel(a.attemptId)).reason).toBe("execution timed out");
    // The worker ignores the cancel and reports success much later: refused, nothing changes.
    w.finish(a, Outcome.SUCCEEDED, { startedAtMs: Date.now() - 5000 });
    await eventually(() => (w.rejections.length > 0 ? true : undefined));
    const after = await ngpu.tasks.get(task.id);
    expect(after.state).toBe(TaskState.TIMED_OUT);
    expect(Number(after.gpuMs)).toBe(1000);
    expect(after.attempts[0]?.state).toBe("TIMED_OUT");
    // The GPU is free for the next task.
    const { task: next } = await ngpu.tasks.submit({ app, input: {} });
    expect((await w.nextAssignment()).taskId).toBe(next.id);
  });

  it("expires a task that waits longer than its queue time-to-live", async () => {
    const { app } = await isolated({ queueTtlMs: 1000 });
    const { task } = await ngpu.tasks.submit({ app, input: {} });
    expect(task.expireTime).toBeDefined();
    const done = await ngpu.tasks.wait(task.id, { timeoutMs: 10_000 });
    expect(done.state).toBe(TaskState.EXPIRED);
    expect(done.attemptCount).toBe(0);
  });

  it("cancels an assigned task and a cold-starting one; the worker is told and the GPU freed", async () => {
    const { app, join } = await isolated();
    const w = await join();
    const { task: assigned } = await ngpu.tasks.submit({ app, input: {} });
    const a1 = await w.nextAssignment();
    await until(assigned.id, TaskState.ASSIGNED);
    expect((await ngpu.tasks.cancel(assigned.id)).state).toBe(TaskState.CANCELLED);
    await w.waitForCancel(a1.attemptId);
    w.finish(a1, Outcome.CANCELLED);

    const { task: starting } = await ngpu.tasks.submit({ app, input: {} });
    const a2 = await w.nextAssignment();
    w.coldStart(a2);
    await until(starting.id, TaskState.STARTING);
    expect((await ngpu.tasks.cancel(starting.id)).state).toBe(TaskState.CANCELLED);
    await w.waitForCancel(a2.attemptId);
    // A late "started" after the cancel changes nothing: cancelled stays cancelled.
    w.started(a2);
    w.finish(a2, Outcome.CANCELLED);
    await eventually(async () => ((await ngpu.tasks.get(starting.id)).attempts[0]?.state === "CANCELLED" ? true : undefined));
    expect(await state(starting.id)).toBe(TaskState.CANCELLED);

    const { task: third } = await ngpu.tasks.submit({ app, input: {} });
    const a3 = await w.nextAssignment();
    expect(a3.taskId).toBe(third.id);
  });

  it("a cancel racing a completion leaves exactly one terminal state", async () => {
    const { app, join } = await isolated();
    const w = await join();
    for (let i = 0; i < 5; i++) {
      const { task } = await ngpu.tasks.submit({ app, input: { i } });
      const a = await w.nextAssignment();
      w.started(a);
      await until(task.id, TaskState.RUNNING);
      w.finish(a, Outcome.SUCCEEDED);
      const cancelled = await ngpu.tasks.cancel(task.id);
      const final = await ngpu.tasks.wait(task.id);
      expect([TaskState.SUCCEEDED, TaskState.CANCELLED]).toContain(final.state);
      expect(cancelled.state).toBe(final.state);
      // And it stays that way.
      await new Promise((r) => setTimeout(r, 50));
      expect(await state(task.id)).toBe(final.state);
    }
  });

  it("drains a worker: no new work, running tasks get the grace period, the rest run elsewhere", async () => {
    await ngpu.apps.deploy({ name: "sleep-drain", runtime: builtin("sleep"), gpu: { count: 1, allowedModels: ["NVIDIA Drain Test"] } });
    const draining = await startTestWorker(net, ["NVIDIA Drain Test:24GiB:2"], { name: "draining" });
    const short = (await ngpu.tasks.submit({ app: "sleep-drain", input: { seconds: 0.2 } })).task;
    const long = (await ngpu.tasks.submit({ app: "sleep-drain", input: { seconds: 30 } })).task;
    await until(short.id, TaskState.RUNNING);
    await until(long.id, TaskState.RUNNING);
    const stopped = draining.shutdown(1000);
    const nodeId = draining.nodeId();
    await eventually(async () => ((await ngpu.nodes.get(nodeId)).state === NodeState.DRAINING ? true : undefined));
    // New work does not go to a draining node.
    const later = (await ngpu.tasks.submit({ app: "sleep-drain", input: { seconds: 0 } })).task;
    await stopped;
    expect((await ngpu.tasks.get(short.id)).state).toBe(TaskState.SUCCEEDED);
    // The long task was given back, not failed: it waits for another node.
    await until(long.id, TaskState.QUEUED);
    expect((await ngpu.tasks.get(long.id)).attempts.map((x) => x.state)).toEqual(["RELEASED"]);
    // Handed back is not a try: it does not use up max_attempts.
    expect((await ngpu.tasks.get(long.id)).attemptCount).toBe(0);
    expect(await state(later.id)).toBe(TaskState.QUEUED);
    const other = await startTestWorker(net, ["NVIDIA Drain Test:24GiB:2"], { name: "takes-over" });
    try {
      await ngpu.tasks.cancel(long.id);
      const done = await ngpu.tasks.wait(later.id, { timeoutMs: 10_000 });
      expect(done.state).toBe(TaskState.SUCCEEDED);
      expect(done.nodeId).toBe(other.nodeId());
      expect(taskOutput(done)).toEqual({ slept_seconds: 0 });
    } finally {
      await other.shutdown(0);
    }
  });

  it("hands running tasks back at once when a draining worker is hurried (a second SIGTERM)", async () => {
    await ngpu.apps.deploy({ name: "sleep-hurry", runtime: builtin("sleep"), gpu: { count: 1, allowedModels: ["NVIDIA Hurry Test"] } });
    const w = await startTestWorker(net, ["NVIDIA Hurry Test:24GiB"], { name: "hurried" });
    const long = (await ngpu.tasks.submit({ app: "sleep-hurry", input: { seconds: 60 } })).task;
    await until(long.id, TaskState.RUNNING);
    const stopped = w.shutdown(60_000);
    await eventually(async () => ((await ngpu.nodes.get(w.nodeId())).state === NodeState.DRAINING ? true : undefined));
    const hurriedAt = Date.now();
    w.hurry();
    await stopped;
    expect(Date.now() - hurriedAt).toBeLessThan(5_000);
    await until(long.id, TaskState.QUEUED);
    expect((await ngpu.tasks.get(long.id)).attempts.map((x) => x.state)).toEqual(["RELEASED"]);
    await ngpu.tasks.cancel(long.id);
  });

  it("lets an operator drain a node through the API; nobody else may", async () => {
    await ngpu.apps.deploy({ name: "sleep-op-drain", runtime: builtin("sleep"), gpu: { count: 1, allowedModels: ["NVIDIA Operator Drain"] } });
    const w = await startTestWorker(net, ["NVIDIA Operator Drain:24GiB"], { name: "op-drained" });
    try {
      const long = (await ngpu.tasks.submit({ app: "sleep-op-drain", input: { seconds: 30 } })).task;
      await until(long.id, TaskState.RUNNING);
      const other = await net.newWorkspace();
      const stranger = client(net.url, other.apiKey);
      try {
        await expect(stranger.nodes.drain(w.nodeId(), 100)).rejects.toMatchObject({ code: Code.PermissionDenied });
      } finally {
        await stranger.close();
      }
      await expect(ngpu.nodes.drain("node_00000000000000000000000000")).rejects.toMatchObject({ code: Code.NotFound });
      const drained = await ngpu.nodes.drain(w.nodeId(), 300);
      expect(drained.state).toBe(NodeState.DRAINING);
      await until(long.id, TaskState.QUEUED);
      expect((await ngpu.tasks.get(long.id)).attempts.map((x) => x.state)).toEqual(["RELEASED"]);
      // Still connected, still draining: no new work.
      await new Promise((r) => setTimeout(r, 1200));
      expect(await state(long.id)).toBe(TaskState.QUEUED);
      expect((await ngpu.nodes.get(w.nodeId())).state).toBe(NodeState.DRAINING);
      await ngpu.tasks.cancel(long.id);
    } finally {
      await w.shutdown(0);
    }
  });
});
