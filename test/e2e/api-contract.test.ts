import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskState } from "../../gen/ngpu/v1/task_pb.js";
import type { NgpuClient } from "../../sdk/index.js";
import type { Worker } from "../../worker/worker.js";
import { startTestNetwork, type TestNetwork } from "../helpers/network.js";
import { builtin, client } from "../helpers/sdk.js";
import { eventually, startTestWorker } from "../helpers/workers.js";

async function failure(promise: Promise<unknown>): Promise<ConnectError> {
  try {
    await promise;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected the call to fail");
}

describe("task API contract", () => {
  let net: TestNetwork;
  let ngpu: NgpuClient;
  let worker: Worker;
  const taskCount = async () => Number((await net.cp.db.selectFrom("tasks").select((eb) => eb.fn.countAll().as("n")).executeTakeFirstOrThrow()).n);

  beforeAll(async () => {
    net = await startTestNetwork();
    ngpu = client(net.url, net.apiKey);
    worker = await startTestWorker(net, ["NVIDIA GeForce RTX 3090:24GiB"]);
    await ngpu.apps.deploy({ name: "echo", runtime: builtin("echo"), gpu: { count: 1 } });
    await ngpu.apps.deploy({ name: "sleep", runtime: builtin("sleep"), gpu: { count: 1 } });
    await ngpu.apps.deploy({ name: "h100-only", runtime: builtin("echo"), gpu: { count: 1, allowedModels: ["NVIDIA H100 80GB HBM3"] } });
    await ngpu.apps.deploy({
      name: "typed",
      runtime: builtin("echo"),
      gpu: { count: 1 },
      inputSchema: {
        type: "object",
        properties: { style: { type: "string", enum: ["sketch", "sepia"] }, strength: { type: "number", minimum: 0, maximum: 1 } },
        required: ["style"],
        additionalProperties: false,
      },
    });
  });
  afterAll(async () => {
    await worker.shutdown(0);
    await ngpu.close();
    await net.close();
  });

  it("runs a task and reports state changes and the output", async () => {
    const { task } = await ngpu.tasks.submit({ app: "sleep", input: { seconds: 0.2 } });
    const states: TaskState[] = [];
    let progressEvents = 0;
    for await (const event of ngpu.tasks.watch(task.id)) {
      if (event.case === "task") states.push(event.value.state);
      if (event.case === "progress") progressEvents++;
    }
    expect(states[0]).toBe(TaskState.QUEUED);
    expect(states.at(-1)).toBe(TaskState.SUCCEEDED);
    expect(states).toContain(TaskState.RUNNING);
    expect(progressEvents).toBeGreaterThan(0);
    const done = await ngpu.tasks.get(task.id);
    expect(done.progress?.percent).toBe(100);
    expect(Number(done.executionMs)).toBeGreaterThanOrEqual(150);
    expect(Number(done.gpuMs)).toBe(Number(done.executionMs));
    expect(done.attemptCount).toBe(1);
  });

  it("returns the first task for a repeated idempotency key and creates nothing", async () => {
    const first = await ngpu.tasks.submit({ app: "echo", input: { n: 1 }, idempotencyKey: "order-42" });
    const before = await taskCount();
    const again = await ngpu.tasks.submit({ app: "echo", input: { n: 1 }, idempotencyKey: "order-42" });
    expect(first.created).toBe(true);
    expect(again.created).toBe(false);
    expect(again.task.id).toBe(first.task.id);
    expect(await taskCount()).toBe(before);
    // The same key with another input is not a retry: refused, naming the field.
    const clash = await failure(ngpu.tasks.submit({ app: "echo", input: { n: 2 }, idempotencyKey: "order-42" }));
    expect(clash.code).toBe(Code.AlreadyExists);
    expect(clash.rawMessage).toMatch(/^idempotency_key: already used for task tsk_/);
    expect(await taskCount()).toBe(before);
  });

  it("keeps workspaces apart", async () => {
    const other = await net.newWorkspace();
    const stranger = client(net.url, other.apiKey);
    try {
      const { task } = await ngpu.tasks.submit({ app: "echo", input: { secret: true } });
      expect((await failure(stranger.tasks.get(task.id))).code).toBe(Code.NotFound);
      expect((await failure(stranger.tasks.cancel(task.id))).code).toBe(Code.NotFound);
      expect((await failure(stranger.tasks.submit({ app: "echo", input: {} }))).code).toBe(Code.NotFound);
      expect((await failure(stranger.apps.get("echo"))).code).toBe(Code.NotFound);
      expect((await stranger.tasks.list()).tasks).toEqual([]);
      expect((await stranger.apps.list()).apps).toEqual([]);
      // The same idempotency key in another workspace is another task.
      await stranger.apps.deploy({ name: "echo", runtime: builtin("echo") });
      const a = await ngpu.tasks.submit({ app: "echo", input: {}, idempotencyKey: "shared-key" });
      const b = await stranger.tasks.submit({ app: "echo", input: {}, idempotencyKey: "shared-key" });
      expect(b.created).toBe(true);
      expect(b.task.id).not.toBe(a.task.id);
      expect((await ngpu.tasks.get(a.task.id)).workspaceId).toBe(net.workspaceId);
    } finally {
      await stranger.close();
    }
  });

  it("cancels a queued task: it never runs", async () => {
    const { task } = await ngpu.tasks.submit({ app: "h100-only", input: {} });
    const cancelled = await ngpu.tasks.cancel(task.id);
    expect(cancelled.state).toBe(TaskState.CANCELLED);
    expect(cancelled.attemptCount).toBe(0);
    // Cancelling again changes nothing.
    expect((await ngpu.tasks.cancel(task.id)).state).toBe(TaskState.CANCELLED);
  });

  it("cancels a running task, stops it on the worker and frees the GPU", async () => {
    const { task } = await ngpu.tasks.submit({ app: "sleep", input: { seconds: 60 } });
    await eventually(async () => ((await ngpu.tasks.get(task.id)).state === TaskState.RUNNING ? true : undefined));
    const cancelled = await ngpu.tasks.cancel(task.id);
    expect(cancelled.state).toBe(TaskState.CANCELLED);
    // The worker confirms; the attempt ends and the GPU takes the next task.
    const attempt = await eventually(async () => {
      const row = await net.cp.db.selectFrom("attempts").selectAll().where("task_id", "=", task.id).executeTakeFirst();
      return row?.ended_at ? row : undefined;
    });
    expect(attempt.state).toBe("CANCELLED");
    // It ran a little before the cancel: that time is recorded on the cancelled task.
    const cancelledTask = await ngpu.tasks.get(task.id);
    expect(Number(cancelledTask.executionMs)).toBeGreaterThan(0);
    expect(Number(cancelledTask.gpuMs)).toBe(Number(cancelledTask.executionMs));
    const next = await ngpu.tasks.run({ app: "echo", input: { after: "cancel" } }, { waitMs: 10_000 });
    expect(next.task.state).toBe(TaskState.SUCCEEDED);
    expect((await ngpu.tasks.get(task.id)).state).toBe(TaskState.CANCELLED);
  });

  it("lists tasks newest first with filters and cursor pagination", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await ngpu.tasks.submit({ app: "h100-only", input: { i }, labels: { batch: "pages" } })).task.id);
    const seen: string[] = [];
    let pageToken = "";
    do {
      const page = await ngpu.tasks.list({ pageSize: 2, labels: { batch: "pages" }, pageToken });
      seen.push(...page.tasks.map((t) => t.id));
      pageToken = page.nextPageToken;
    } while (pageToken);
    expect(seen).toEqual([...ids].reverse());
    const queued = await ngpu.tasks.list({ app: "h100-only", states: [TaskState.QUEUED], pageSize: 100 });
    expect(queued.tasks.every((t) => t.state === TaskState.QUEUED && t.appName === "h100-only")).toBe(true);
    for (const id of ids) await ngpu.tasks.cancel(id);
  });

  describe("bad input gets the right code, names the field, and writes nothing", () => {
    const cases: Array<[string, () => Promise<unknown>, Code, RegExp]> = [
      ["unknown app", () => ngpu.tasks.submit({ app: "no-such-app", input: {} }), Code.NotFound, /app "no-such-app" not found/],
      ["empty app", () => ngpu.tasks.submit({ app: "", input: {} }), Code.InvalidArgument, /^app: is required/],
      ["oversized input", () => ngpu.tasks.submit({ app: "echo", input: { blob: "x".repeat(1024 * 1024 + 1) } }), Code.InvalidArgument, /^input: is \d+ bytes as JSON; the limit is 1048576 bytes/],
      ["deeply nested input", () => ngpu.tasks.submit({ app: "echo", input: JSON.parse("{\"a\":".repeat(40) + "1" + "}".repeat(40)) }), Code.InvalidArgument, /^input: is nested/],
      ["input not matching the schema", () => ngpu.tasks.submit({ app: "typed", input: { style: "cubist" } }), Code.InvalidArgument, /^input\.style: must be one of \["sketch","sepia"\]/],
      ["missing required input", () => ngpu.tasks.submit({ app: "typed", input: {} }), Code.InvalidArgument, /^input\.style: is required/],
      ["unknown input", () => ngpu.tasks.submit({ app: "typed", input: { style: "sepia", colour: 1 } }), Code.InvalidArgument, /^input\.colour: is not an input of this app/],
      ["priority out of range", () => ngpu.tasks.submit({ app: "echo", input: {}, priority: 5000 }), Code.InvalidArgument, /^priority:/],
      ["bad label", () => ngpu.tasks.submit({ app: "echo", input: {}, labels: { "bad key!": "x" } }), Code.InvalidArgument, /^labels\["bad key!"\]/],
      ["negative timeout", () => ngpu.tasks.submit({ app: "echo", input: {}, timeoutMs: -5 }), Code.InvalidArgument, /^timeout_ms:/],
      ["bad page token", () => ngpu.tasks.list({ pageToken: "garbage" }), Code.InvalidArgument, /^page_token:/],
      ["forged page token", () => ngpu.tasks.list({ pageToken: Buffer.from('{"s":1.5}').toString("base64url") }), Code.InvalidArgument, /^page_token:/],
      ["NUL in the app name", () => ngpu.tasks.submit({ app: "ec\u0000ho", input: {} }), Code.InvalidArgument, /^app: must not contain a NUL/],
      ["NUL in an input value", () => ngpu.tasks.submit({ app: "echo", input: { a: ["ok", "b\u0000"] } }), Code.InvalidArgument, /^input\.a\[1\]: must not contain a NUL/],
      ["NUL in an input key", () => ngpu.tasks.submit({ app: "echo", input: { "k\u0000": 1 } }), Code.InvalidArgument, /^input key "k\\u0000": must not contain a NUL/],
      ["NUL in a task id", () => ngpu.tasks.get("tsk\u0000"), Code.InvalidArgument, /^task_id:/],
      ["too many GPUs", () => ngpu.apps.deploy({ name: "greedy", runtime: builtin("echo"), gpu: { count: 17 } }), Code.InvalidArgument, /^gpu\.count: must be at most 16/],
      ["memory without GPUs", () => ngpu.apps.deploy({ name: "odd", runtime: builtin("echo"), gpu: { count: 0, minMemoryBytes: 1024 } }), Code.InvalidArgument, /^gpu\.count:/],
      ["empty model name", () => ngpu.apps.deploy({ name: "odd", runtime: builtin("echo"), gpu: { count: 1, allowedModels: [" "] } }), Code.InvalidArgument, /^gpu\.allowed_models\[0\]: is required/],
      ["no runtime", () => ngpu.apps.deploy({ name: "odd", runtime: { process: { command: [] } } }), Code.InvalidArgument, /^runtime\.process\.command: is required/],
      ["bad app name", () => ngpu.apps.deploy({ name: "Bad Name", runtime: builtin("echo") }), Code.InvalidArgument, /^name:/],
      ["reserved env", () => ngpu.apps.deploy({ name: "odd", runtime: builtin("echo"), env: { PORT: "1" } }), Code.InvalidArgument, /^env\["PORT"\]/],
    ];
    for (const [name, call, code, message] of cases) {
      it(name, async () => {
        const before = await taskCount();
        const appsBefore = (await ngpu.apps.list({ pageSize: 500 })).apps.length;
        const err = await failure(call());
        expect(Code[err.code]).toBe(Code[code]);
        expect(err.rawMessage).toMatch(message);
        expect(await taskCount()).toBe(before);
        expect((await ngpu.apps.list({ pageSize: 500 })).apps.length).toBe(appsBefore);
      });
    }

    it("an unknown JSON field or enum value is refused, not ignored", async () => {
      const before = await taskCount();
      for (const body of [{ app: "echo", bogus: 1 }, { app: "echo", priority: "high" }]) {
        const res = await fetch(`${net.url}/ngpu.v1.TaskService/SubmitTask`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${net.apiKey}` },
          body: JSON.stringify(body),
        });
        expect(res.status).toBe(400);
        expect(((await res.json()) as { code: string }).code).toBe("invalid_argument");
      }
      const list = await fetch(`${net.url}/ngpu.v1.TaskService/ListTasks`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${net.apiKey}` },
        body: JSON.stringify({ states: ["TASK_STATE_RUNNIN"] }),
      });
      expect(list.status).toBe(400);
      expect(await taskCount()).toBe(before);
    });

    it("a message over the 4 MiB limit is refused with RESOURCE_EXHAUSTED", async () => {
      const before = await taskCount();
      const err = await failure(ngpu.tasks.submit({ app: "echo", input: { blob: "x".repeat(5 * 1024 * 1024) } }));
      expect(err.code).toBe(Code.ResourceExhausted);
      expect(await taskCount()).toBe(before);
    });

    it("a missing or wrong API key is UNAUTHENTICATED", async () => {
      const anonymous = await fetch(`${net.url}/ngpu.v1.TaskService/ListTasks`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
      expect(anonymous.status).toBe(401);
      const body = (await anonymous.json()) as { code: string; message: string };
      expect(body.code).toBe("unauthenticated");
      expect(body.message).toMatch(/missing API key/);
      const forged = client(net.url, "key_00000000000000000000000000.not-the-secret");
      const wrongSecret = client(net.url, net.apiKey.replace(/\..*$/, ".wrong"));
      try {
        for (const c of [forged, wrongSecret]) {
          const err = await failure(c.tasks.submit({ app: "echo", input: {} }));
          expect(err.code).toBe(Code.Unauthenticated);
          expect(err.rawMessage).toMatch(/invalid or revoked API key/);
        }
      } finally {
        await Promise.all([forged.close(), wrongSecret.close()]);
      }
    });
  });
});
