import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Task, TaskState } from "../../gen/ngpu/v1/task_pb.js";
import { type NgpuClient, taskOutput } from "../../sdk/index.js";
import type { Worker } from "../../worker/worker.js";
import { startTestNetwork, type TestNetwork } from "../helpers/network.js";
import { builtin, client } from "../helpers/sdk.js";
import { eventually, startTestWorker } from "../helpers/workers.js";

const GiB = 1024 ** 3;

describe("scheduling", () => {
  let net: TestNetwork;
  let ngpu: NgpuClient;
  const workers: Worker[] = [];

  beforeAll(async () => {
    net = await startTestNetwork();
    ngpu = client(net.url, net.apiKey);
    workers.push(await startTestWorker(net, ["NVIDIA GeForce RTX 3060:12GiB"], { name: "small" }));
    workers.push(await startTestWorker(net, ["NVIDIA GeForce RTX 3090:24GiB"], { name: "big" }));
  });
  afterAll(async () => {
    await Promise.all(workers.map((w) => w.shutdown(0)));
    await ngpu.close();
    await net.close();
  });

  const nodeNamed = async (name: string) => {
    for await (const node of ngpu.nodes.listAll()) if (node.name === name) return node.id;
    throw new Error(`no node ${name}`);
  };

  it("runs a task only on a GPU with enough memory", async () => {
    await ngpu.apps.deploy({ name: "needs-16g", runtime: builtin("echo"), gpu: { count: 1, minMemoryBytes: 16 * GiB } });
    for (let i = 0; i < 3; i++) {
      const { task } = await ngpu.tasks.run({ app: "needs-16g", input: { i } });
      expect(task.state).toBe(TaskState.SUCCEEDED);
      expect(task.nodeId).toBe(await nodeNamed("big"));
      expect(taskOutput(task)).toEqual({ i });
    }
  });

  it("runs a task only on an allowed GPU model", async () => {
    await ngpu.apps.deploy({ name: "only-3060", runtime: builtin("echo"), gpu: { count: 1, allowedModels: ["NVIDIA GeForce RTX 3060"] } });
    const { task } = await ngpu.tasks.run({ app: "only-3060", input: {} });
    expect(task.state).toBe(TaskState.SUCCEEDED);
    expect(task.nodeId).toBe(await nodeNamed("small"));
  });

  it("keeps a task that fits no GPU queued until one joins", async () => {
    await ngpu.apps.deploy({ name: "two-gpus", runtime: builtin("echo"), gpu: { count: 2 } });
    const { task } = await ngpu.tasks.submit({ app: "two-gpus", input: { x: 1 } });
    // Scheduling rounds run at least every second; give it several.
    await new Promise((r) => setTimeout(r, 1500));
    const waiting = await ngpu.tasks.get(task.id);
    expect(waiting.state).toBe(TaskState.QUEUED);
    expect(waiting.queueReason).toBe("no connected node can run it: it needs 2 GPUs on one node; it waits for one to join");
    workers.push(await startTestWorker(net, ["NVIDIA L4:24GiB:2"], { name: "pair" }));
    const done = await ngpu.tasks.wait(task.id, { timeoutMs: 15_000 });
    expect(done.state).toBe(TaskState.SUCCEEDED);
    expect(done.nodeId).toBe(await nodeNamed("pair"));
    expect([...done.gpuIndices].sort()).toEqual([0, 1]);
  });

  it("queues tasks while every fitting GPU is busy and runs them first come, first served", async () => {
    await ngpu.apps.deploy({ name: "sleep-big", runtime: builtin("sleep"), gpu: { count: 1, minMemoryBytes: 20 * GiB, allowedModels: ["NVIDIA GeForce RTX 3090"] } });
    const submitted: Task[] = [];
    for (let i = 0; i < 4; i++) submitted.push((await ngpu.tasks.submit({ app: "sleep-big", input: { seconds: 0.3 } })).task);
    const running = await eventually(async () => {
      const states = await Promise.all(submitted.map(async (t) => (await ngpu.tasks.get(t.id)).state));
      return states.includes(TaskState.RUNNING) ? states : undefined;
    });
    // One GPU fits: one runs, the rest wait.
    expect(running.filter((s) => s === TaskState.QUEUED).length).toBeGreaterThanOrEqual(2);
    const done = await Promise.all(submitted.map((t) => ngpu.tasks.wait(t.id, { timeoutMs: 20_000 })));
    expect(done.every((t) => t.state === TaskState.SUCCEEDED)).toBe(true);
    const starts = done.map((t) => Number(t.startTime!.seconds) * 1000 + t.startTime!.nanos / 1e6);
    expect([...starts].sort((a, b) => a - b)).toEqual(starts);
    // Never two at once on the one GPU.
    for (let i = 1; i < done.length; i++) {
      const prevEnd = Number(done[i - 1]!.endTime!.seconds) * 1000 + done[i - 1]!.endTime!.nanos / 1e6;
      expect(starts[i]!).toBeGreaterThanOrEqual(prevEnd - 5);
    }
  });

  it("higher priority runs before older lower-priority tasks", async () => {
    await ngpu.apps.deploy({ name: "sleep-small", runtime: builtin("sleep"), gpu: { count: 1, allowedModels: ["NVIDIA GeForce RTX 3060"] } });
    const blocker = (await ngpu.tasks.submit({ app: "sleep-small", input: { seconds: 0.5 } })).task;
    await eventually(async () => ((await ngpu.tasks.get(blocker.id)).state === TaskState.RUNNING ? true : undefined));
    const low = (await ngpu.tasks.submit({ app: "sleep-small", input: { seconds: 0 }, priority: 0 })).task;
    const high = (await ngpu.tasks.submit({ app: "sleep-small", input: { seconds: 0 }, priority: 10 })).task;
    const [l, h] = await Promise.all([ngpu.tasks.wait(low.id), ngpu.tasks.wait(high.id)]);
    expect(Number(h.startTime!.seconds) * 1e9 + h.startTime!.nanos).toBeLessThan(Number(l.startTime!.seconds) * 1e9 + l.startTime!.nanos);
  });
});
