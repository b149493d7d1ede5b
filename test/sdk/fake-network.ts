// An in-process stand-in for the control plane's public services, for testing the
// SDK and the CLI on the wire. Tasks run by themselves on short timers, which start
// when the task is first watched (or after a second without a watcher), so a caller
// on a loaded machine still sees every step:
// QUEUED → ASSIGNED → RUNNING → 3 progress steps → SUCCEEDED with an output that
// echoes the input and carries a data: URI. Input `{ fail: true }` ends FAILED,
// `{ hold: true }` stays RUNNING until cancelled.
import * as http from "node:http";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { clone, create, fromJson, type JsonObject, type MessageInitShape } from "@bufbuild/protobuf";
import { ValueSchema, timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ConnectRouter, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { AppSchema, AppService, type App } from "../../gen/ngpu/v1/app_pb.js";
import { GpuSchema, GpuTelemetrySchema } from "../../gen/ngpu/v1/gpu_pb.js";
import { NodeSchema, NodeService, NodeState, type Node } from "../../gen/ngpu/v1/node_pb.js";
import {
  ProgressSchema,
  TaskSchema,
  TaskService,
  TaskState,
  type SubmitTaskRequest,
  type Task,
  type WatchTaskResponse,
  type WatchTaskResponseSchema,
} from "../../gen/ngpu/v1/task_pb.js";
import { isTerminal } from "../../sdk/index.js";

/** A 1×1 transparent PNG. */
export const PNG_BASE64 =
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=";

type Event = Exclude<WatchTaskResponse["event"], { case: undefined }>;

interface TaskRecord {
  task: Task;
  listeners: Set<(event: Event) => void>;
  /** Starts the simulated run; a no-op after the first call. */
  start: () => void;
}

export interface FakeNetworkOptions {
  readonly apiKey?: string;
  /** Delay between simulated task steps, in ms. */
  readonly stepMs?: number;
}

export interface FakeNetwork {
  /** h2c URL (HTTP/2 without TLS), as the control plane serves. */
  readonly url: string;
  /** HTTP/1.1 URL of the same services. */
  readonly http1Url: string;
  readonly apiKey: string;
  /** Every authorization header the services saw, in order. */
  readonly authHeaders: string[];
  /** When true, WatchTask sends the current task and ends at once (a dropped stream). */
  watchEndsEarly: boolean;
  /** Number of WatchTask streams served so far. */
  watchCount(): number;
  /** HTTP/2 sessions now open on the h2c server. */
  openSessions(): number;
  /** Adds an app directly (no RPC). */
  addApp(name: string): App;
  /** Adds a finished task directly (for list tests). */
  addTask(app: string, state: TaskState, labels?: Record<string, string>): Task;
  /** Drops every open HTTP/2 connection (a network blip); the server keeps listening. */
  dropConnections(): void;
  /** Stops listening and waits for clients to hang up (hangs if a client keeps a connection). */
  close(): Promise<void>;
  /** Stops listening and drops every connection. */
  destroy(): Promise<void>;
}

export async function startFakeNetwork(options: FakeNetworkOptions = {}): Promise<FakeNetwork> {
  const apiKey = options.apiKey ?? "test-key";
  const stepMs = options.stepMs ?? 5;
  const authHeaders: string[] = [];
  const apps = new Map<string, App>();
  const tasks = new Map<string, TaskRecord>();
  const byIdempotencyKey = new Map<string, Task>();
  const timers = new Set<NodeJS.Timeout>();
  let nextId = 1;
  let watches = 0;
  const state = { watchEndsEarly: false };

  const nodes: Node[] = [
    create(NodeSchema, {
      id: "node-1",
      name: "rig-a",
      state: NodeState.ONLINE,
      gpus: [0, 1].map((index) =>
        create(GpuSchema, { index, uuid: `GPU-${index}`, model: "NVIDIA GeForce RTX 3090", memoryTotalBytes: 24n << 30n }),
      ),
      telemetry: [0, 1].map((index) =>
        create(GpuTelemetrySchema, {
          index,
          uuid: `GPU-${index}`,
          time: timestampNow(),
          utilizationPercent: 50 + index * 10,
          memoryUsedBytes: 4n << 30n,
          memoryTotalBytes: 24n << 30n,
          temperatureCelsius: 60 + index,
          powerDrawWatts: 200,
        }),
      ),
      runningTasks: 1,
    }),
    create(NodeSchema, { id: "node-2", name: "laptop", state: NodeState.ONLINE, gpuError: "nvidia-smi: not found" }),
  ];

  function findApp(nameOrId: string): App {
    const app = apps.get(nameOrId) ?? [...apps.values()].find((a) => a.id === nameOrId);
    if (!app) throw new ConnectError(`app ${nameOrId} not found`, Code.NotFound);
    return app;
  }

  function findTask(id: string): TaskRecord {
    const record = tasks.get(id);
    if (!record) throw new ConnectError(`task ${id} not found`, Code.NotFound);
    return record;
  }

  function addApp(name: string): App {
    const existing = apps.get(name);
    const app = create(AppSchema, {
      id: existing?.id ?? `app-${nextId++}`,
      name,
      version: (existing?.version ?? 0) + 1,
      createTime: timestampNow(),
      updateTime: timestampNow(),
    });
    apps.set(name, app);
    return app;
  }

  function emit(record: TaskRecord, event: Event): void {
    for (const listener of record.listeners) listener(event);
  }

  function setState(record: TaskRecord, next: TaskState, patch: Partial<Pick<Task, "error" | "output">> = {}): void {
    if (isTerminal(record.task.state)) return; // terminal state always wins
    record.task.state = next;
    if (patch.error !== undefined) record.task.error = patch.error;
    if (patch.output !== undefined) record.task.output = patch.output;
    if (next === TaskState.RUNNING) record.task.startTime = timestampNow();
    if (isTerminal(next)) record.task.endTime = timestampNow();
    emit(record, { case: "task", value: clone(TaskSchema, record.task) });
  }

  function later(fn: () => void, ms: number): void {
    const timer = setTimeout(() => {
      timers.delete(timer);
      fn();
    }, ms);
    timers.add(timer);
  }

  function simulate(record: TaskRecord): void {
    const input: JsonObject = record.task.input ?? {};
    const steps: (() => void)[] = [
      () => setState(record, TaskState.ASSIGNED),
      () => setState(record, TaskState.RUNNING),
    ];
    if (input["hold"] === true) {
      steps.forEach((step, i) => later(step, stepMs * (i + 1)));
      return;
    }
    for (let step = 1; step <= 3; step++) {
      steps.push(() => {
        if (isTerminal(record.task.state)) return;
        const progress = create(ProgressSchema, { percent: (step / 3) * 100, step, totalSteps: 3, message: `step ${step}` });
        record.task.progress = progress;
        emit(record, { case: "progress", value: progress });
        emit(record, { case: "log", value: `did step ${step}` });
      });
    }
    steps.push(() =>
      input["fail"] === true
        ? setState(record, TaskState.FAILED, { error: "boom" })
        : setState(record, TaskState.SUCCEEDED, {
            output: fromJson(ValueSchema, { echo: input, image: `data:image/png;base64,${PNG_BASE64}` }),
          }),
    );
    steps.forEach((step, i) => later(step, stepMs * (i + 1)));
  }

  function submit(req: SubmitTaskRequest): { task: Task; created: boolean } {
    const app = findApp(req.app);
    if (req.idempotencyKey !== "") {
      const earlier = byIdempotencyKey.get(req.idempotencyKey);
      if (earlier) return { task: clone(TaskSchema, earlier), created: false };
    }
    const task = create(TaskSchema, {
      id: `task-${nextId++}`,
      appId: app.id,
      appName: app.name,
      state: TaskState.QUEUED,
      input: req.input ?? {},
      priority: req.priority,
      labels: req.labels,
      idempotencyKey: req.idempotencyKey,
      createTime: timestampNow(),
      timeoutMs: req.timeoutMs,
    });
    let started = false;
    const record: TaskRecord = {
      task,
      listeners: new Set(),
      start() {
        if (started) return;
        started = true;
        simulate(record);
      },
    };
    tasks.set(task.id, record);
    if (req.idempotencyKey !== "") byIdempotencyKey.set(req.idempotencyKey, task);
    later(record.start, 1_000);
    return { task: clone(TaskSchema, task), created: true };
  }

  function untilTerminal(record: TaskRecord, waitMs: number, signal: AbortSignal): Promise<void> {
    if (isTerminal(record.task.state)) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        record.listeners.delete(listener);
        resolve();
      };
      const listener = (event: Event) => {
        if (event.case === "task" && isTerminal(event.value.state)) done();
      };
      const timer = setTimeout(done, waitMs);
      record.listeners.add(listener);
      signal.addEventListener("abort", done, { once: true });
    });
  }

  async function* watchTask(taskId: string, ctx: HandlerContext): AsyncGenerator<MessageInitShape<typeof WatchTaskResponseSchema>> {
    watches++;
    const record = findTask(taskId);
    const queue: Event[] = [];
    let wake: (() => void) | undefined;
    const listener = (event: Event) => {
      queue.push(event);
      wake?.();
    };
    record.listeners.add(listener);
    record.start();
    try {
      yield { event: { case: "task", value: clone(TaskSchema, record.task) } };
      if (isTerminal(record.task.state) || state.watchEndsEarly) return;
      for (;;) {
        for (let event = queue.shift(); event !== undefined; event = queue.shift()) {
          yield { event };
          if (event.case === "task" && isTerminal(event.value.state)) return;
        }
        await new Promise<void>((resolve) => {
          wake = resolve;
          ctx.signal.addEventListener("abort", () => resolve(), { once: true });
        });
        if (ctx.signal.aborted) return;
      }
    } finally {
      record.listeners.delete(listener);
    }
  }

  function page<T>(items: T[], pageSize: number, pageToken: string, defaultSize: number): { items: T[]; nextPageToken: string } {
    const size = pageSize === 0 ? defaultSize : pageSize;
    const offset = pageToken === "" ? 0 : Number(pageToken);
    const next = offset + size;
    return { items: items.slice(offset, next), nextPageToken: next < items.length ? String(next) : "" };
  }

  const auth: Interceptor = (next) => async (req) => {
    const header = req.header.get("authorization") ?? "";
    authHeaders.push(header);
    if (header !== `Bearer ${apiKey}`) throw new ConnectError("bad api key", Code.Unauthenticated);
    return next(req);
  };

  function routes(router: ConnectRouter): void {
    router.service(AppService, {
      deployApp(req) {
        const app = addApp(req.name);
        app.runtime = req.runtime;
        app.gpu = req.gpu;
        app.env = req.env;
        app.timeoutMs = req.timeoutMs;
        app.description = req.description;
        return { app, created: true };
      },
      updateApp(req) {
        const app = findApp(req.app);
        if (req.description !== undefined) app.description = req.description;
        app.version++;
        return { app };
      },
      getApp(req) {
        return { app: findApp(req.app) };
      },
      listApps(req) {
        const { items, nextPageToken } = page([...apps.values()], req.pageSize, req.pageToken, 50);
        return { apps: items, nextPageToken };
      },
    });
    router.service(TaskService, {
      submitTask(req) {
        return submit(req);
      },
      async runTask(req, ctx) {
        if (!req.task) throw new ConnectError("task is required", Code.InvalidArgument);
        const { task, created } = submit(req.task);
        const record = findTask(task.id);
        await untilTerminal(record, req.waitMs === 0 ? 60_000 : req.waitMs, ctx.signal);
        return { task: clone(TaskSchema, record.task), created };
      },
      getTask(req) {
        return { task: clone(TaskSchema, findTask(req.taskId).task) };
      },
      watchTask(req, ctx) {
        return watchTask(req.taskId, ctx);
      },
      cancelTask(req) {
        const record = findTask(req.taskId);
        setState(record, TaskState.CANCELLED);
        return { task: clone(TaskSchema, record.task) };
      },
      listTasks(req) {
        const matching = [...tasks.values()]
          .map((r) => r.task)
          .reverse() // newest first
          .filter((t) => req.app === "" || t.appName === req.app || t.appId === req.app)
          .filter((t) => req.states.length === 0 || req.states.includes(t.state))
          .filter((t) => Object.entries(req.labels).every(([k, v]) => t.labels[k] === v));
        const { items, nextPageToken } = page(matching, req.pageSize, req.pageToken, 50);
        return { tasks: items, nextPageToken };
      },
    });
    router.service(NodeService, {
      listNodes(req) {
        const { items, nextPageToken } = page(nodes, req.pageSize, req.pageToken, 100);
        return { nodes: items, nextPageToken };
      },
      getNode(req) {
        const node = nodes.find((n) => n.id === req.nodeId);
        if (!node) throw new ConnectError(`node ${req.nodeId} not found`, Code.NotFound);
        return { node };
      },
    });
  }

  const handler = connectNodeAdapter({ routes, interceptors: [auth] });
  const h2 = http2.createServer(handler);
  const h1 = http.createServer(handler);
  const sessions = new Set<http2.ServerHttp2Session>();
  h2.on("session", (session) => {
    sessions.add(session);
    session.on("close", () => sessions.delete(session));
  });
  const listen = (server: http.Server | http2.Http2Server) =>
    new Promise<number>((resolve) => server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port)));
  const [h2Port, h1Port] = await Promise.all([listen(h2), listen(h1)]);
  const closeServer = (server: http.Server | http2.Http2Server) =>
    new Promise<void>((resolve) => server.close(() => resolve()));
  const stopTimers = () => {
    for (const timer of timers) clearTimeout(timer);
    timers.clear();
  };

  return {
    url: `http://127.0.0.1:${h2Port}`,
    http1Url: `http://127.0.0.1:${h1Port}`,
    apiKey,
    authHeaders,
    get watchEndsEarly() {
      return state.watchEndsEarly;
    },
    set watchEndsEarly(value: boolean) {
      state.watchEndsEarly = value;
    },
    watchCount: () => watches,
    openSessions: () => sessions.size,
    addApp,
    addTask(app, taskState, labels = {}) {
      const a = findApp(app);
      const task = create(TaskSchema, {
        id: `task-${nextId++}`,
        appId: a.id,
        appName: a.name,
        state: taskState,
        labels,
        createTime: timestampNow(),
      });
      tasks.set(task.id, { task, listeners: new Set(), start: () => {} });
      return task;
    },
    dropConnections() {
      for (const session of sessions) session.destroy();
    },
    async close() {
      stopTimers();
      h1.closeAllConnections();
      await Promise.all([closeServer(h2), closeServer(h1)]);
    },
    async destroy() {
      stopTimers();
      for (const session of sessions) session.destroy();
      h1.closeAllConnections();
      await Promise.all([closeServer(h2), closeServer(h1)]);
    },
  };
}
