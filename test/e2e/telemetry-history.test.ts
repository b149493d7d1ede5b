import { timestampDate } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError, type NgpuClient } from "../../sdk/index.js";
import type { Worker } from "../../worker/worker.js";
import { startTestNetwork, type TestNetwork } from "../helpers/network.js";
import { builtin, client } from "../helpers/sdk.js";
import { eventually, startTestWorker } from "../helpers/workers.js";

/** TelemetryService: the GPU history behind the dashboard's charts. */
describe("GPU telemetry history", () => {
  let net: TestNetwork;
  let ngpu: NgpuClient;
  let worker: Worker;

  beforeAll(async () => {
    net = await startTestNetwork();
    ngpu = client(net.url, net.apiKey);
    worker = await startTestWorker(net, ["NVIDIA GeForce RTX 3090:24GiB:2"]);
    await ngpu.apps.deploy({ name: "sleeper", runtime: builtin("sleep"), gpu: { count: 1 } });
  });
  afterAll(async () => {
    await worker.shutdown(0);
    await ngpu.close();
    await net.close();
  });

  const code = (p: Promise<unknown>) =>
    p.then(
      () => undefined,
      (e: unknown) => ({ code: ConnectError.from(e).code, message: ConnectError.from(e).rawMessage }),
    );

  it("gives a task's GPU readings over its attempt, only on the GPU it held, only to its workspace", async () => {
    const { task } = await ngpu.tasks.run({ app: "sleeper", input: { seconds: 2 } }, { waitMs: 30_000 });
    const done = await ngpu.tasks.get(task.id);
    const attempt = done.attempts[0]!;
    const series = await ngpu.telemetry.task(task.id);
    expect(series).toHaveLength(1);
    const [s] = series;
    expect(s!.nodeId).toBe(attempt.nodeId);
    expect(s!.attemptId).toBe(attempt.id);
    expect(s!.gpuIndex).toBe(attempt.gpuIndices[0]);
    expect(s!.points.length).toBeGreaterThanOrEqual(2);
    // Within the attempt (and the 2 s margin either side), oldest first, with the readings.
    const start = timestampDate(attempt.startTime!).getTime() - 2000;
    const end = timestampDate(attempt.endTime!).getTime() + 2000;
    const times = s!.points.map((p) => timestampDate(p.time!).getTime());
    expect(times).toEqual([...times].sort((a, b) => a - b));
    expect(times.every((t) => t >= start - 1000 && t <= end)).toBe(true);
    expect(s!.points.every((p) => p.utilizationPercent !== undefined && p.powerDrawWatts !== undefined && p.memoryTotalBytes === 24n * 1024n ** 3n)).toBe(true);

    const other = await net.newWorkspace();
    const stranger = client(net.url, other.apiKey);
    try {
      expect((await code(stranger.telemetry.task(task.id)))?.code).toBe(Code.NotFound);
    } finally {
      await stranger.close();
    }
    // A task still queued has no readings yet.
    await ngpu.apps.deploy({ name: "too-big", runtime: builtin("echo"), gpu: { count: 4 } });
    const { task: queued } = await ngpu.tasks.submit({ app: "too-big" });
    expect(await ngpu.telemetry.task(queued.id)).toEqual([]);
  });

  it("gives a node's readings over a range, averaged to at most max_points per GPU, and refuses bad ranges naming the field", async () => {
    const nodeId = worker.nodeId();
    const start = new Date(Date.now() - 60_000);
    const raw = await eventually(async () => {
      const r = await ngpu.telemetry.node(nodeId, { start });
      return r.series.length === 2 && r.series.every((s) => s.points.length >= 3) ? r : undefined;
    });
    expect(raw.series.map((s) => s.gpuIndex)).toEqual([0, 1]);
    expect(raw.stepMs).toBe(1000n);
    const coarse = await ngpu.telemetry.node(nodeId, { start, maxPoints: 2 });
    // 60-odd seconds in 2 points: whole-second steps of half the range.
    expect(coarse.stepMs % 1000n).toBe(0n);
    expect(coarse.stepMs >= 30_000n && coarse.stepMs <= 40_000n).toBe(true);
    expect(coarse.series.every((s) => s.points.length <= 3)).toBe(true);

    expect(await code(ngpu.telemetry.node(nodeId, { start, maxPoints: 1 }))).toEqual({ code: Code.InvalidArgument, message: "max_points: must be 0 or between 2 and 2000" });
    expect(await code(ngpu.telemetry.node(nodeId, { start, end: new Date(start.getTime() - 1) }))).toEqual({ code: Code.InvalidArgument, message: "end_time: must be after start_time" });
    expect(await code(ngpu.telemetry.node(nodeId, { start: new Date(Date.now() - 40 * 86400_000) }))).toEqual({ code: Code.InvalidArgument, message: "end_time: the range is at most 31 days" });
    expect(await code(ngpu.telemetry.node(nodeId, { start: new Date(0) }))).toEqual({ code: Code.InvalidArgument, message: "start_time: must be between 2000-01-01 and 2200-01-01" });
    expect((await code(ngpu.telemetry.node("node_nope", { start })))?.code).toBe(Code.NotFound);
  });
});
