import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  Code,
  ConnectError,
  createNgpuClient,
  isTerminal,
  taskOutput,
  TaskState,
  type NgpuClient,
  type NgpuClientOptions,
  type TaskEvent,
} from "../../sdk/index.js";
import { PNG_BASE64, startFakeNetwork, type FakeNetwork } from "./fake-network.js";

let network: FakeNetwork;
const clients: NgpuClient[] = [];

function client(overrides: Partial<NgpuClientOptions> = {}): NgpuClient {
  const c = createNgpuClient({ baseUrl: network.url, apiKey: network.apiKey, ...overrides });
  clients.push(c);
  return c;
}

beforeEach(async () => {
  network = await startFakeNetwork();
  network.addApp("echo");
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await network.destroy();
});

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = [];
  for await (const item of iterable) items.push(item);
  return items;
}

describe("createNgpuClient", () => {
  it("sends the API key as a Bearer header on every call", async () => {
    const ngpu = client();
    await ngpu.apps.get("echo");
    await ngpu.tasks.submit({ app: "echo" });
    expect(network.authHeaders).toEqual(["Bearer test-key", "Bearer test-key"]);
  });

  it("passes ConnectError through with the server's code and message", async () => {
    const err = await client()
      .apps.get("nope")
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.NotFound);
    expect((err as ConnectError).rawMessage).toBe("app nope not found");

    const denied = await client({ apiKey: "wrong" })
      .apps.get("echo")
      .catch((e: unknown) => e);
    expect((denied as ConnectError).code).toBe(Code.Unauthenticated);
  });

  it("rejects bad options at once", () => {
    expect(() => createNgpuClient({ baseUrl: "localhost:7700", apiKey: "k" })).toThrow(/baseUrl/);
    expect(() => createNgpuClient({ baseUrl: "http://x", apiKey: " " })).toThrow(/apiKey/);
    expect(() => createNgpuClient({ baseUrl: "http://x", apiKey: "k", protocol: "grpc", httpVersion: "1.1" })).toThrow(/grpc/);
  });

  it.each([
    { protocol: "connect", httpVersion: "2" },
    { protocol: "grpc", httpVersion: "2" },
    { protocol: "grpc-web", httpVersion: "2" },
    { protocol: "connect", httpVersion: "1.1" },
    { protocol: "grpc-web", httpVersion: "1.1" },
  ] as const)("works over $protocol on HTTP/$httpVersion", async ({ protocol, httpVersion }) => {
    const baseUrl = httpVersion === "2" ? network.url : network.http1Url;
    const ngpu = client({ baseUrl, protocol, httpVersion });
    const { task } = await ngpu.tasks.submit({ app: "echo", input: { n: 1 } });
    const done = await ngpu.tasks.wait(task.id);
    expect(done.state).toBe(TaskState.SUCCEEDED);
  });
});

describe("apps", () => {
  it("deploys with short runtime forms and numbers for 64-bit fields", async () => {
    const { app, created } = await client().apps.deploy({
      name: "sd",
      runtime: { docker: { image: "r8.im/sd" } },
      gpu: { count: 1, minMemoryBytes: 8 * 2 ** 30, allowedModels: ["NVIDIA A100"] },
      env: { A: "1" },
      timeoutMs: 60_000,
    });
    expect(created).toBe(true);
    expect(app.runtime?.kind).toMatchObject({ case: "docker", value: { image: "r8.im/sd", port: 0 } });
    expect(app.gpu?.minMemoryBytes).toBe(8n << 30n);
    expect(app.timeoutMs).toBe(60_000n);
    expect(app.env).toEqual({ A: "1" });
  });

  it("listAll walks every page", async () => {
    for (let i = 0; i < 6; i++) network.addApp(`app-${i}`);
    const names = (await collect(client().apps.listAll({ pageSize: 2 }))).map((a) => a.name);
    expect(names).toEqual(["echo", "app-0", "app-1", "app-2", "app-3", "app-4", "app-5"]);
  });
});

describe("tasks", () => {
  it("submit is idempotent with a key", async () => {
    const ngpu = client();
    const first = await ngpu.tasks.submit({ app: "echo", idempotencyKey: "k1" });
    const second = await ngpu.tasks.submit({ app: "echo", idempotencyKey: "k1" });
    expect(first.created).toBe(true);
    expect(second.created).toBe(false);
    expect(second.task.id).toBe(first.task.id);
  });

  it("watch yields the task, progress and logs, and ends at the terminal task", async () => {
    const ngpu = client();
    const { task } = await ngpu.tasks.submit({ app: "echo", input: { prompt: "hi" } });
    const events: TaskEvent[] = await collect(ngpu.tasks.watch(task.id));
    const first = events[0];
    const last = events.at(-1);
    expect(first?.case).toBe("task");
    expect(last?.case === "task" && last.value.state).toBe(TaskState.SUCCEEDED);
    expect(events.filter((e) => e.case === "progress").map((e) => e.case === "progress" && e.value.step)).toEqual([1, 2, 3]);
    expect(events.some((e) => e.case === "log")).toBe(true);
    if (last?.case !== "task") throw new Error("unreachable");
    expect(taskOutput(last.value)).toEqual({ echo: { prompt: "hi" }, image: `data:image/png;base64,${PNG_BASE64}` });
  });

  it("watch of an ended task yields it once and ends", async () => {
    const task = network.addTask("echo", TaskState.FAILED);
    const events = await collect(client().tasks.watch(task.id));
    expect(events).toHaveLength(1);
  });

  it("wait returns the terminal task, failures included", async () => {
    const ngpu = client();
    const { task } = await ngpu.tasks.submit({ app: "echo", input: { fail: true } });
    const done = await ngpu.tasks.wait(task.id);
    expect(done.state).toBe(TaskState.FAILED);
    expect(done.error).toBe("boom");
    expect(isTerminal(done.state)).toBe(true);
  });

  it("wait watches again when the stream ends before the task", async () => {
    network.watchEndsEarly = true;
    const ngpu = client();
    const { task } = await ngpu.tasks.submit({ app: "echo" });
    const done = await ngpu.tasks.wait(task.id);
    expect(done.state).toBe(TaskState.SUCCEEDED);
    expect(network.watchCount()).toBeGreaterThan(1);
  });

  it("wait reconnects when the connection drops", async () => {
    const ngpu = client();
    const { task } = await ngpu.tasks.submit({ app: "echo", input: { hold: true } });
    let dropped = false;
    let cancelled: Promise<unknown> | undefined;
    const waiting = ngpu.tasks.wait(task.id, {
      onEvent(event) {
        // Drop the connection once the task runs, then end the task from another client.
        if (!dropped && event.case === "task" && event.value.state === TaskState.RUNNING) {
          dropped = true;
          network.dropConnections();
          cancelled = client().tasks.cancel(task.id);
        }
      },
    });
    expect((await waiting).state).toBe(TaskState.CANCELLED);
    await cancelled;
    expect(network.watchCount()).toBeGreaterThan(1);
  });

  it("wait gives up after timeoutMs and stops on abort; the task keeps running", async () => {
    const ngpu = client();
    const { task } = await ngpu.tasks.submit({ app: "echo", input: { hold: true } });
    const timedOut = await ngpu.tasks.wait(task.id, { timeoutMs: 50 }).catch((e: unknown) => e);
    expect((timedOut as ConnectError).code).toBe(Code.DeadlineExceeded);

    const aborter = new AbortController();
    const waiting = ngpu.tasks.wait(task.id, { signal: aborter.signal }).catch((e: unknown) => e);
    aborter.abort();
    expect(((await waiting) as ConnectError).code).toBe(Code.Canceled);

    expect(isTerminal((await ngpu.tasks.get(task.id)).state)).toBe(false);
    expect((await ngpu.tasks.cancel(task.id)).state).toBe(TaskState.CANCELLED);
  });

  it("run returns the ended task, or the running one after waitMs", async () => {
    const ngpu = client();
    const quick = await ngpu.tasks.run({ app: "echo" }, { waitMs: 5_000 });
    expect(quick.task.state).toBe(TaskState.SUCCEEDED);
    const held = await ngpu.tasks.run({ app: "echo", input: { hold: true } }, { waitMs: 50 });
    expect(isTerminal(held.task.state)).toBe(false);
  });

  it("list filters, and listAll pages through newest first", async () => {
    const ngpu = client();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(network.addTask("echo", TaskState.SUCCEEDED, { batch: "a" }).id);
    network.addTask("echo", TaskState.FAILED);
    const page = await ngpu.tasks.list({ states: [TaskState.SUCCEEDED], labels: { batch: "a" }, pageSize: 2 });
    expect(page.tasks).toHaveLength(2);
    expect(page.nextPageToken).not.toBe("");
    const all = await collect(ngpu.tasks.listAll({ labels: { batch: "a" }, pageSize: 2 }));
    expect(all.map((t) => t.id)).toEqual(ids.reverse());
  });
});

describe("nodes", () => {
  it("lists and gets nodes", async () => {
    const ngpu = client();
    const { nodes } = await ngpu.nodes.list();
    expect(nodes.map((n) => n.id)).toEqual(["node-1", "node-2"]);
    expect((await ngpu.nodes.get("node-2")).gpuError).toMatch(/nvidia-smi/);
    expect(await collect(ngpu.nodes.listAll({ pageSize: 1 }))).toHaveLength(2);
  });
});

describe("close", () => {
  it("frees the connection so the server can close", async () => {
    const ngpu = createNgpuClient({ baseUrl: network.url, apiKey: network.apiKey });
    await ngpu.apps.get("echo");
    expect(network.openSessions()).toBe(1);
    await ngpu.close();
    // close() of an HTTP/2 server waits for its sessions: it hangs if the client leaks one.
    const closed = await Promise.race([
      network.close().then(() => "closed"),
      new Promise((resolve) => setTimeout(resolve, 5_000, "hung")),
    ]);
    expect(closed).toBe("closed");
    await vi.waitFor(() => expect(network.openSessions()).toBe(0));
  });

  it("ends open watches and refuses later calls", async () => {
    const ngpu = createNgpuClient({ baseUrl: network.url, apiKey: network.apiKey });
    const { task } = await ngpu.tasks.submit({ app: "echo", input: { hold: true } });
    const iterator = ngpu.tasks.watch(task.id)[Symbol.asyncIterator]();
    expect((await iterator.next()).done).toBe(false);
    const pending = iterator.next().catch((e: unknown) => e);
    await ngpu.close();
    expect(((await pending) as ConnectError).code).toBe(Code.Canceled);
    expect(((await ngpu.apps.get("echo").catch((e: unknown) => e)) as ConnectError).code).toBe(Code.Canceled);
  });
});
