import { create } from "@bufbuild/protobuf";
import { Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { pushable } from "it-pushable";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GetAppRequestSchema, type GetAppResponse, AppService } from "../../gen/ngpu/v1/app_pb.js";
import { GetTaskRequestSchema, type GetTaskResponse, SubmitTaskRequestSchema, type SubmitTaskResponse, TaskService, TaskState } from "../../gen/ngpu/v1/task_pb.js";
import { type ConnectRequestSchema, type ConnectResponse, WorkerService } from "../../gen/ngpu/v1/worker_pb.js";
import type { NgpuClient } from "../../sdk/index.js";
import type { Worker } from "../../worker/worker.js";
import { bufCurl } from "../helpers/buf-curl.js";
import { grpcJsClient, unary } from "../helpers/grpc-js.js";
import { startTestNetwork, type TestNetwork } from "../helpers/network.js";
import { newNodeKey } from "../helpers/node-key.js";
import { builtin, client } from "../helpers/sdk.js";
import { eventually, startTestWorker } from "../helpers/workers.js";

describe("protocols: gRPC (grpc-js), reflection (buf curl), Connect JSON (curl-like)", () => {
  let net: TestNetwork;
  let ngpu: NgpuClient;
  let worker: Worker;

  beforeAll(async () => {
    net = await startTestNetwork();
    ngpu = client(net.url, net.apiKey);
    worker = await startTestWorker(net, ["NVIDIA GeForce RTX 3090:24GiB"]);
    await ngpu.apps.deploy({ name: "echo", runtime: builtin("echo"), gpu: { count: 1 }, env: { MODEL: "tiny", MODE: "fast" } });
  });
  afterAll(async () => {
    await worker.shutdown(0);
    await ngpu.close();
    await net.close();
  });

  it("serves the reference gRPC implementation (@grpc/grpc-js)", async () => {
    const tasks = grpcJsClient(TaskService, net.url);
    const apps = grpcJsClient(AppService, net.url);
    try {
      const auth = new grpc.Metadata();
      auth.set("authorization", `Bearer ${net.apiKey}`);
      const app = await unary<GetAppResponse>(apps, "GetApp", create(GetAppRequestSchema, { app: "echo" }), auth);
      expect(app.app?.env).toEqual({ MODE: "fast", MODEL: "tiny" });
      const submitted = await unary<SubmitTaskResponse>(tasks, "SubmitTask", create(SubmitTaskRequestSchema, { app: "echo", input: { via: "grpc-js" } }), auth);
      const done = await ngpu.tasks.wait(submitted.task!.id, { timeoutMs: 10_000 });
      expect(done.state).toBe(TaskState.SUCCEEDED);
      const fetched = await unary<GetTaskResponse>(tasks, "GetTask", create(GetTaskRequestSchema, { taskId: done.id }), auth);
      expect(fetched.task?.state).toBe(TaskState.SUCCEEDED);
      await expect(unary(tasks, "GetTask", create(GetTaskRequestSchema, { taskId: done.id }))).rejects.toMatchObject({ code: grpc.status.UNAUTHENTICATED });
    } finally {
      tasks.close();
      apps.close();
    }
  });

  it("lists and describes the services by reflection and calls them (buf curl, as grpcurl would)", async () => {
    const services = await bufCurl(["--http2-prior-knowledge", "--protocol", "grpc", "--list-services", net.url]);
    expect(services.code).toBe(0);
    for (const s of ["ngpu.v1.TaskService", "ngpu.v1.AppService", "ngpu.v1.NodeService", "ngpu.v1.WorkerService", "grpc.health.v1.Health"]) {
      expect(services.stdout).toContain(s);
    }
    const methods = await bufCurl(["--http2-prior-knowledge", "--protocol", "grpc", "--list-methods", net.url]);
    expect(methods.stdout.split("\n").filter((m) => m.startsWith("ngpu.v1.TaskService/")).sort()).toEqual(
      ["CancelTask", "GetTask", "ListTasks", "RunTask", "SubmitTask", "WatchTask"].map((m) => `ngpu.v1.TaskService/${m}`),
    );
    const auth = ["-H", `authorization: Bearer ${net.apiKey}`];
    // A message with a map field (env) and an enum (task state), encoded and decoded through reflection.
    const app = await bufCurl(["--http2-prior-knowledge", "--protocol", "grpc", ...auth, "-d", '{"app":"echo"}', `${net.url}/ngpu.v1.AppService/GetApp`]);
    expect(app.code).toBe(0);
    expect(JSON.parse(app.stdout).app.env).toEqual({ MODE: "fast", MODEL: "tiny" });
    const run = await bufCurl([
      "--http2-prior-knowledge",
      "--protocol",
      "grpc",
      ...auth,
      "-d",
      '{"task":{"app":"echo","input":{"hello":"reflection"},"labels":{"via":"buf-curl"}},"waitMs":10000}',
      `${net.url}/ngpu.v1.TaskService/RunTask`,
    ]);
    expect(run.code).toBe(0);
    const task = JSON.parse(run.stdout).task;
    expect(task.state).toBe("TASK_STATE_SUCCEEDED");
    expect(task.output).toEqual({ hello: "reflection" });
    expect(task.labels).toEqual({ via: "buf-curl" });
    const listed = await bufCurl(["--http2-prior-knowledge", "--protocol", "grpc", ...auth, "-d", '{"states":["TASK_STATE_SUCCEEDED"],"labels":{"via":"buf-curl"}}', `${net.url}/ngpu.v1.TaskService/ListTasks`]);
    expect(JSON.parse(listed.stdout).tasks.map((t: { id: string }) => t.id)).toEqual([task.id]);
    const health = await bufCurl(["--http2-prior-knowledge", "--protocol", "grpc", "-d", "{}", `${net.url}/grpc.health.v1.Health/Check`]);
    expect(JSON.parse(health.stdout).status).toBe("SERVING");
    const denied = await bufCurl(["--http2-prior-knowledge", "--protocol", "grpc", "-d", '{"app":"echo"}', `${net.url}/ngpu.v1.AppService/GetApp`]);
    expect(denied.code).toBe(Code.Unauthenticated << 3);
  });

  it("answers Connect JSON over HTTP/1.1, as curl sends it", async () => {
    const res = await fetch(`${net.url}/ngpu.v1.TaskService/RunTask`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${net.apiKey}` },
      body: JSON.stringify({ task: { app: "echo", input: { via: "curl" } }, waitMs: 10000 }),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { task: { state: string; output: unknown } };
    expect(body.task.state).toBe("TASK_STATE_SUCCEEDED");
    expect(body.task.output).toEqual({ via: "curl" });
    const bad = await fetch(`${net.url}/ngpu.v1.TaskService/SubmitTask`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${net.apiKey}` },
      body: JSON.stringify({ app: "echo", priority: 99999 }),
    });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({ code: "invalid_argument", message: "priority: must be between -1000 and 1000" });
  });

  it("shows each node's GPUs with live telemetry", async () => {
    const node = await eventually(async () => {
      const nodes = (await ngpu.nodes.list()).nodes;
      return nodes[0]?.telemetry.length ? nodes[0] : undefined;
    });
    expect(node.gpus.map((g) => [g.model, Number(g.memoryTotalBytes)])).toEqual([["NVIDIA GeForce RTX 3090", 24 * 1024 ** 3]]);
    const t = node.telemetry[0]!;
    expect(t.utilizationPercent).toBeGreaterThanOrEqual(0);
    expect(Number(t.memoryTotalBytes)).toBe(24 * 1024 ** 3);
    expect(t.temperatureCelsius).toBeGreaterThan(0);
    expect(t.powerLimitWatts).toBeGreaterThan(0);
    expect(node.freeGpuIndices).toEqual([0]);
  });

  describe("worker stream", () => {
    type Up = MessageInitShape<typeof ConnectRequestSchema>;

    async function openStream(first: Up) {
      const sessionManager = new Http2SessionManager(net.url);
      const workers = createClient(WorkerService, createGrpcTransport({ baseUrl: net.url, sessionManager }));
      const up = pushable<Up>({ objectMode: true });
      // Speaks for a node key of its own: answers the control plane's challenge.
      const key = newNodeKey();
      up.push(first.message?.case === "hello" ? { message: { case: "hello", value: { publicKey: key.publicKey, ...first.message.value } } } : first);
      const abort = new AbortController();
      const down = workers.connect((async function* () { yield* up; })(), { signal: abort.signal })[Symbol.asyncIterator]();
      return {
        up,
        next: async (): Promise<ConnectResponse> => {
          for (;;) {
            const r = await down.next();
            if (r.done) throw new Error("stream ended");
            if (r.value.message.case !== "challenge") return r.value;
            up.push({ message: { case: "proof", value: { signature: key.prove(r.value.message.value.nonce) } } });
          }
        },
        close: () => {
          abort.abort();
          sessionManager.abort();
        },
      };
    }
    const gpu = { index: 0, uuid: "GPU-test-0", model: "NVIDIA T4", memoryTotalBytes: 16n * 1024n ** 3n };

    it("refuses a worker without a valid enrollment token", async () => {
      const stream = await openStream({ message: { case: "hello", value: { enrollmentToken: "enr_nope.nope", gpus: [gpu] } } });
      try {
        await expect(stream.next()).rejects.toMatchObject({ code: Code.Unauthenticated });
      } finally {
        stream.close();
      }
    });

    it("rejects telemetry for a GPU the worker never declared, and keeps none of it", async () => {
      const stream = await openStream({ message: { case: "hello", value: { enrollmentToken: net.enrollmentToken, name: "liar", gpus: [gpu] } } });
      try {
        const welcome = await stream.next();
        expect(welcome.message.case).toBe("welcome");
        const nodeId = welcome.message.case === "welcome" ? welcome.message.value.nodeId : "";
        stream.up.push({ message: { case: "telemetry", value: { gpus: [{ index: 0, uuid: "GPU-test-0", utilizationPercent: 10 }, { index: 5, uuid: "GPU-made-up", utilizationPercent: 99 }] } } });
        let reply = await stream.next();
        while (reply.message.case !== "rejection") reply = await stream.next();
        expect(reply.message.value.reason).toMatch(/^telemetry\.gpus\[1\]\.index: GPU 5 was not declared in hello/);
        // An honest report afterwards is taken.
        stream.up.push({ message: { case: "telemetry", value: { gpus: [{ index: 0, uuid: "GPU-test-0", utilizationPercent: 42 }] } } });
        const node = await eventually(async () => {
          const n = await ngpu.nodes.get(nodeId);
          return n.telemetry.length > 0 ? n : undefined;
        });
        expect(node.telemetry.map((t) => [t.index, t.utilizationPercent])).toEqual([[0, 42]]);
      } finally {
        stream.close();
      }
    });

    it("shows no numbers once the worker reports that it cannot read its GPUs", async () => {
      const stream = await openStream({ message: { case: "hello", value: { enrollmentToken: net.enrollmentToken, name: "flaky-driver", gpus: [gpu] } } });
      try {
        const welcome = await stream.next();
        const nodeId = welcome.message.case === "welcome" ? welcome.message.value.nodeId : "";
        stream.up.push({ message: { case: "telemetry", value: { gpus: [{ index: 0, uuid: "GPU-test-0", utilizationPercent: 55 }] } } });
        await eventually(async () => ((await ngpu.nodes.get(nodeId)).telemetry.length === 1 ? true : undefined));
        stream.up.push({ message: { case: "telemetry", value: { gpus: [], error: "FAILED: nvidia-smi failed (exit 9): driver not loaded" } } });
        const node = await eventually(async () => {
          const n = await ngpu.nodes.get(nodeId);
          return n.telemetry.length === 0 && n.gpuError !== "" ? n : undefined;
        });
        expect(node.gpuError).toMatch(/driver not loaded/);
      } finally {
        stream.close();
      }
    });

    it("rejects a task update from an attempt it was never given", async () => {
      const stream = await openStream({ message: { case: "hello", value: { enrollmentToken: net.enrollmentToken, name: "forger", gpus: [gpu] } } });
      try {
        expect((await stream.next()).message.case).toBe("welcome");
        const { task } = await ngpu.tasks.submit({ app: "echo", input: {} });
        stream.up.push({
          message: {
            case: "taskUpdate",
            value: { taskId: task.id, attemptId: "att_forged", fencingToken: 1n, update: { case: "finished", value: { outcome: 1, startedAtMs: 1n, endedAtMs: 2n } } },
          },
        });
        let reply = await stream.next();
        while (reply.message.case !== "rejection" && reply.message.case !== "cancel") reply = await stream.next();
        expect(reply.message.case === "rejection" ? reply.message.value.reason : "cancel").toMatch(/attempt is unknown|cancel/);
        const after = await ngpu.tasks.wait(task.id, { timeoutMs: 10_000 });
        expect(after.state).toBe(TaskState.SUCCEEDED);
        expect(after.nodeId).not.toBe("");
        const attempts = await net.cp.db.selectFrom("attempts").select("id").where("task_id", "=", task.id).execute();
        expect(attempts.map((a) => a.id)).not.toContain("att_forged");
      } finally {
        stream.close();
      }
    });
  });
});
