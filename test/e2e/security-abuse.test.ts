import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Outcome } from "../../gen/ngpu/v1/worker_pb.js";
import { type NgpuClient, TaskState } from "../../sdk/index.js";
import { type FakeWorker, startFakeWorker } from "../helpers/fake-worker.js";
import { startTestNetwork, type TestNetwork } from "../helpers/network.js";
import { builtin, client } from "../helpers/sdk.js";
import { eventually } from "../helpers/workers.js";

const FLOOD = { perSecond: 100, burst: 300 };

describe("security: provider abuse is refused (and logged)", () => {
  let net: TestNetwork;
  let ngpu: NgpuClient;
  let model = 0;
  const fakes: FakeWorker[] = [];

  beforeAll(async () => {
    net = await startTestNetwork({ workerFloodLimit: FLOOD });
    ngpu = client(net.url, net.apiKey);
  });
  afterEach(() => {
    for (const f of fakes.splice(0)) f.kill();
  });
  afterAll(async () => {
    await ngpu.close();
    await net.close();
  });

  /** A fake worker with a GPU model of its own and an app that only runs there. */
  async function provider(name: string) {
    const gpuModel = `NVIDIA Abuse GPU ${++model}`;
    const app = `abuse-${model}`;
    await ngpu.apps.deploy({ name: app, runtime: builtin("echo"), gpu: { count: 1, allowedModels: [gpuModel] } });
    const worker = await startFakeWorker(net.url, {
      enrollmentToken: net.enrollmentToken,
      name,
      gpus: [{ index: 0, uuid: `GPU-${name}`, model: gpuModel, memoryTotalBytes: 24n * 1024n ** 3n }],
      runtimes: ["builtin"],
    });
    fakes.push(worker);
    return { app, worker };
  }
  const rejected = (w: FakeWorker, pattern: RegExp) => eventually(() => (w.rejections.some((r) => pattern.test(r)) ? true : undefined), 10_000, `a rejection matching ${pattern}`);
  const usageRows = async (taskId: string) => net.cp.db.selectFrom("usage_records").selectAll().where("task_id", "=", taskId).execute();

  it("refuses updates and usage for a task the node was not given", async () => {
    const { app, worker: honest } = await provider("honest");
    const { worker: thief } = await provider("thief");
    const { task } = await ngpu.tasks.submit({ app, input: {} });
    const a = await honest.nextAssignment();
    honest.started(a);
    await eventually(async () => ((await ngpu.tasks.get(task.id)).state === TaskState.RUNNING ? true : undefined), 10_000, "the task running");
    // The thief claims the honest node's attempt as its own, with the right ids and token.
    thief.finish(a, Outcome.SUCCEEDED, { startedAtMs: Date.now() - 60_000, endedAtMs: Date.now() });
    await rejected(thief, /^task_update: attempt is unknown, superseded or already finished/);
    expect((await ngpu.tasks.get(task.id)).state).toBe(TaskState.RUNNING);
    expect(await usageRows(task.id)).toEqual([]);
    honest.finish(a, Outcome.SUCCEEDED);
    expect((await ngpu.tasks.wait(task.id, { timeoutMs: 10_000 })).state).toBe(TaskState.SUCCEEDED);
    expect((await usageRows(task.id)).map((u) => u.node_id)).toEqual([honest.nodeId]);
  });

  it("refuses execution times outside what the control plane observed, and bills the observed time", async () => {
    const { app, worker } = await provider("padder");
    const before = Date.now();
    const { task } = await ngpu.tasks.submit({ app, input: {} });
    const a = await worker.nextAssignment();
    worker.started(a);
    await eventually(async () => ((await ngpu.tasks.get(task.id)).state === TaskState.RUNNING ? true : undefined));
    // Claims it ran for an hour, starting long before the task existed.
    worker.finish(a, Outcome.SUCCEEDED, { startedAtMs: before - 3_600_000, endedAtMs: Date.now() });
    await rejected(worker, /^task_update\.finished\.started_at_ms: \d+ is before the attempt was assigned/);
    const done = await ngpu.tasks.wait(task.id, { timeoutMs: 10_000 });
    expect(done.state).toBe(TaskState.SUCCEEDED);
    const [usage] = await usageRows(task.id);
    expect(Number(usage!.execution_ms)).toBeLessThanOrEqual(Date.now() - before);
    // And an end in the future.
    const { task: t2 } = await ngpu.tasks.submit({ app, input: {} });
    const a2 = await worker.nextAssignment();
    worker.started(a2);
    worker.finish(a2, Outcome.SUCCEEDED, { startedAtMs: Date.now(), endedAtMs: Date.now() + 86_400_000 });
    await rejected(worker, /^task_update\.finished\.ended_at_ms: \d+ is after the report arrived/);
    await ngpu.tasks.wait(t2.id, { timeoutMs: 10_000 });
    const [u2] = await usageRows(t2.id);
    expect(Number(u2!.execution_ms)).toBeLessThan(60_000);
  });

  it("refuses results from a superseded attempt", async () => {
    const { app, worker } = await provider("stale");
    const { task } = await ngpu.tasks.submit({ app, input: {} });
    const a = await worker.nextAssignment();
    worker.started(a);
    // A fencing token other than the current one: a result from another incarnation of the attempt.
    worker.finish({ ...a, fencingToken: a.fencingToken + 7n }, Outcome.SUCCEEDED);
    await rejected(worker, /attempt is unknown, superseded or already finished/);
    expect((await ngpu.tasks.get(task.id)).state).toBe(TaskState.RUNNING);
    worker.finish(a, Outcome.SUCCEEDED);
    await ngpu.tasks.wait(task.id, { timeoutMs: 10_000 });
    // A second result of the same attempt, after it ended, is refused too and bills nothing more.
    worker.finish(a, Outcome.FAILED);
    await eventually(() => (worker.rejections.filter((r) => /attempt is unknown, superseded or already finished/.test(r)).length >= 2 ? true : undefined));
    expect((await ngpu.tasks.get(task.id)).state).toBe(TaskState.SUCCEEDED);
    expect(await usageRows(task.id)).toHaveLength(1);
  });

  it("refuses telemetry for GPUs the node never declared", async () => {
    const { worker } = await provider("inventor");
    worker.send({ message: { case: "telemetry", value: { gpus: [{ index: 0, uuid: "GPU-inventor", utilizationPercent: 5 }, { index: 3, uuid: "GPU-imaginary", utilizationPercent: 100 }] } } });
    await rejected(worker, /^telemetry\.gpus\[1\]\.index: GPU 3 was not declared in hello; report ignored/);
    const node = await ngpu.nodes.get(worker.nodeId);
    expect(node.telemetry.map((t) => t.index)).not.toContain(3);
  });

  it("drops a message flood with a rejection, then closes the stream", async () => {
    const { worker } = await provider("flooder");
    for (let i = 0; i < FLOOD.burst * 3; i++) worker.send({ message: { case: "heartbeat", value: { seq: BigInt(i) } } });
    await rejected(worker, /^flood: more than 100 messages per second \(burst 300\); messages are dropped/);
    const ended = ConnectError.from(await worker.ended);
    expect(ended.code).toBe(Code.ResourceExhausted);
    expect(ended.rawMessage).toMatch(/^flood: .* stream closed/);
  });
});
