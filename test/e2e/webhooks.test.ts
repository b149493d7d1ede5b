import { execFile } from "node:child_process";
import { createHmac, timingSafeEqual } from "node:crypto";
import { promisify } from "node:util";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { hostname } from "node:os";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskState } from "../../gen/ngpu/v1/task_pb.js";
import { Code, ConnectError, type NgpuClient, verifyWebhook, WebhookDeliveryState, WebhookEventType, WebhookSignatureError } from "../../sdk/index.js";
import type { Worker } from "../../worker/worker.js";
import { startTestNetwork, type TestNetwork } from "../helpers/network.js";
import { builtin, client } from "../helpers/sdk.js";
import { eventually, startTestWorker } from "../helpers/workers.js";

interface Received {
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

/** A webhook receiver that records every POST and answers `status` (503 plays "down"). */
async function startReceiver() {
  const received: Received[] = [];
  let status = 200;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks).toString("utf8") });
      res.writeHead(status).end(status === 200 ? "ok" : "down for maintenance");
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`,
    received,
    setStatus: (s: number) => (status = s),
    events: () => received.map((r) => ({ ...r, event: JSON.parse(r.body) as { id: string; type: string; task: { id: string; state: string; progress?: { percent?: number } } } })),
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** The README's verification recipe, word for word in code: HMAC-SHA256 of "<timestamp>.<body>", hex, after "v1=". */
function verifyByRecipe(secret: string, headers: http.IncomingHttpHeaders, body: string): boolean {
  const timestamp = String(headers["ngpu-webhook-timestamp"]);
  const expected = createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex");
  const given = String(headers["ngpu-webhook-signature"]).replace(/^v1=/, "");
  const fresh = Math.abs(Date.now() / 1000 - Number(timestamp)) < 300;
  return fresh && given.length === expected.length && timingSafeEqual(Buffer.from(given), Buffer.from(expected));
}

/** The real CLI against the test network. */
async function cli(net: TestNetwork, args: string[]): Promise<string> {
  const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", "cli/main.ts", "--url", net.url, "--api-key", net.apiKey, ...args], {
    cwd: new URL("../..", import.meta.url).pathname,
    timeout: 30_000,
  });
  return stdout;
}

describe("webhooks", () => {
  let net: TestNetwork;
  let ngpu: NgpuClient;
  let worker: Worker;

  beforeAll(async () => {
    // Short retries, so "down then up" fits in a test.
    net = await startTestNetwork({ webhooks: { pollIntervalMs: 50, retryBaseMs: 200, retryMaxMs: 800, timeoutMs: 2000, maxAttempts: 50 } });
    ngpu = client(net.url, net.apiKey);
    worker = await startTestWorker(net);
    await ngpu.apps.deploy({ name: "sleeper", runtime: builtin("sleep"), gpu: { count: 1 } });
    await ngpu.apps.deploy({ name: "echo", runtime: builtin("echo"), gpu: { count: 1 } });
  });
  afterAll(async () => {
    await worker.shutdown(0);
    await ngpu.close();
    await net.close();
  });

  it("posts a task's state changes, progress and completion, signed so the documented recipe verifies them", async () => {
    const receiver = await startReceiver();
    try {
      const { task, webhook } = await ngpu.tasks.submit({ app: "sleeper", input: { seconds: 1 }, webhook: { url: receiver.url } });
      expect(webhook?.secret).toMatch(/^whsec_/);
      expect(webhook?.taskId).toBe(task.id);
      await ngpu.tasks.wait(task.id);
      const events = await eventually(() => {
        const e = receiver.events();
        return e.some((x) => x.event.type === "task.completed") ? e : undefined;
      });
      for (const r of events) {
        expect(verifyByRecipe(webhook!.secret, r.headers, r.body)).toBe(true);
        expect(verifyWebhook({ secret: webhook!.secret, body: r.body, timestamp: String(r.headers["ngpu-webhook-timestamp"]), signature: String(r.headers["ngpu-webhook-signature"]) }).task?.id).toBe(task.id);
        expect(r.headers["ngpu-webhook-id"]).toBe(r.event.id);
        expect(r.headers["content-type"]).toBe("application/json");
      }
      const types = events.map((e) => e.event.type);
      expect(types).toContain("task.state_changed");
      expect(types).toContain("task.progress");
      expect(types.filter((t) => t === "task.completed")).toHaveLength(1);
      const states = events.filter((e) => e.event.type === "task.state_changed").map((e) => e.event.task.state);
      expect(states).toContain("TASK_STATE_QUEUED");
      expect(states).toContain("TASK_STATE_RUNNING");
      const completed = events.find((e) => e.event.type === "task.completed")!;
      expect(completed.event.task.state).toBe("TASK_STATE_SUCCEEDED");
      expect(JSON.parse(completed.body).task.output).toEqual({ slept_seconds: 1 });

      // A changed body, a wrong secret or an old timestamp do not verify.
      const sample = events[0]!;
      expect(verifyByRecipe(webhook!.secret, sample.headers, sample.body.replace("task", "tasK"))).toBe(false);
      expect(verifyByRecipe("whsec_wrong", sample.headers, sample.body)).toBe(false);
      expect(() =>
        verifyWebhook({
          secret: webhook!.secret,
          body: sample.body,
          timestamp: String(sample.headers["ngpu-webhook-timestamp"]),
          signature: String(sample.headers["ngpu-webhook-signature"]),
          nowMs: Date.now() + 3_600_000,
        }),
      ).toThrow(WebhookSignatureError);
    } finally {
      await receiver.close();
    }
  });

  it("retries a receiver that is down with backoff, while tasks still complete and can still be cancelled", async () => {
    const receiver = await startReceiver();
    receiver.setStatus(503);
    try {
      const hook = await ngpu.webhooks.create({ app: "sleeper", url: receiver.url, events: [WebhookEventType.COMPLETED, WebhookEventType.STATE_CHANGED] });
      const quick = await ngpu.tasks.run({ app: "sleeper", input: { seconds: 0.2 } }, { waitMs: 15_000 });
      expect(quick.task.state).toBe(TaskState.SUCCEEDED);

      const { task: long } = await ngpu.tasks.submit({ app: "sleeper", input: { seconds: 60 } });
      await eventually(async () => ((await ngpu.tasks.get(long.id)).state === TaskState.RUNNING ? true : undefined));
      const cancelled = await ngpu.tasks.cancel(long.id);
      expect(cancelled.state).toBe(TaskState.CANCELLED);

      // The completion of the quick task is tried again and again, each attempt logged.
      const failing = await eventually(async () => {
        const { deliveries } = await ngpu.webhooks.deliveries({ webhookId: hook.id, taskId: quick.task.id });
        const done = deliveries.find((d) => d.type === "task.completed");
        return done && done.attemptCount >= 3 ? done : undefined;
      });
      expect(failing.state).toBe(WebhookDeliveryState.PENDING);
      expect(failing.lastStatusCode).toBe(503);
      const detail = await ngpu.webhooks.getDelivery(failing.id);
      expect(detail.attempts.length).toBeGreaterThanOrEqual(3);
      expect(detail.attempts.every((a) => a.statusCode === 503 && a.error.startsWith("HTTP 503"))).toBe(true);
      // Backoff: the waits between attempts grow (jittered, but each at least half its ceiling).
      const times = detail.attempts.map((a) => Number(a.time!.seconds) * 1000 + a.time!.nanos / 1e6);
      expect(times[2]! - times[1]!).toBeGreaterThanOrEqual(150);

      // The receiver comes back: everything pending arrives, the cancel included.
      receiver.setStatus(200);
      await eventually(async () => {
        const { deliveries } = await ngpu.webhooks.deliveries({ webhookId: hook.id });
        return deliveries.length > 0 && deliveries.every((d) => d.state === WebhookDeliveryState.DELIVERED) ? true : undefined;
      });
      const delivered = receiver.events();
      const finals = new Map(delivered.filter((e) => e.event.type === "task.completed").map((e) => [e.event.task.id, e.event.task.state]));
      expect(finals.get(quick.task.id)).toBe("TASK_STATE_SUCCEEDED");
      expect(finals.get(long.id)).toBe("TASK_STATE_CANCELLED");
      // Progress was not subscribed to.
      expect(delivered.some((e) => e.event.type === "task.progress")).toBe(false);
      await ngpu.webhooks.delete(hook.id);
    } finally {
      await receiver.close();
    }
  });

  it("a receiver that refuses connections: attempts log the connection error and no status; the task is not held up", async () => {
    const gone = await startReceiver();
    const deadUrl = gone.url;
    await gone.close(); // nothing listens there now
    const { task, webhook } = await ngpu.tasks.submit({ app: "echo", input: { n: 7 }, webhook: { url: deadUrl, events: [WebhookEventType.COMPLETED] } });
    expect((await ngpu.tasks.wait(task.id)).state).toBe(TaskState.SUCCEEDED);
    const pending = await eventually(async () => {
      const { deliveries } = await ngpu.webhooks.deliveries({ taskId: task.id });
      return deliveries[0] && deliveries[0].attemptCount >= 2 ? deliveries[0] : undefined;
    });
    expect(pending.lastStatusCode).toBe(0);
    expect(pending.lastError).toMatch(/ECONNREFUSED|fetch failed/);
    expect(pending.state).toBe(WebhookDeliveryState.PENDING);
    expect(webhook?.url).toBe(deadUrl);
  });

  it("replay re-sends a delivered event with the same id and body and a fresh signature", async () => {
    const receiver = await startReceiver();
    try {
      const { task, webhook } = await ngpu.tasks.submit({ app: "echo", input: { hello: "world" }, webhook: { url: receiver.url, events: [WebhookEventType.COMPLETED] } });
      await ngpu.tasks.wait(task.id);
      const first = await eventually(() => receiver.events()[0]);
      const delivery = await eventually(async () => {
        const d = await ngpu.webhooks.getDelivery(first.event.id);
        return d.state === WebhookDeliveryState.DELIVERED ? d : undefined;
      });
      expect(delivery.attempts).toHaveLength(1);
      expect(delivery.body).toBe(first.body);

      await ngpu.webhooks.replay(delivery.id);
      const second = await eventually(() => receiver.events()[1]);
      expect(second.event.id).toBe(first.event.id);
      expect(second.body).toBe(first.body);
      expect(verifyByRecipe(webhook!.secret, second.headers, second.body)).toBe(true);
      const after = await eventually(async () => {
        const d = await ngpu.webhooks.getDelivery(delivery.id);
        return d.state === WebhookDeliveryState.DELIVERED && d.attempts.length === 2 ? d : undefined;
      });
      expect(after.attempts.map((a) => a.statusCode)).toEqual([200, 200]);
      expect(receiver.received).toHaveLength(2);

      // The same through the CLI: the log, then a replay.
      const log = JSON.parse(await cli(net, ["--json", "webhooks", "deliveries", "--task", task.id])) as { deliveries: Array<{ id: string; attemptCount: number }> };
      expect(log.deliveries).toEqual([expect.objectContaining({ id: delivery.id, attemptCount: 2 })]);
      expect(await cli(net, ["webhooks", "replay", delivery.id])).toContain(`delivery ${delivery.id} queued again`);
      await eventually(() => receiver.events()[2]);
      expect(receiver.events()[2]!.body).toBe(first.body);
    } finally {
      await receiver.close();
    }
  });

  it("a receiver that hangs holds up only its own deliveries", async () => {
    // Accepts the request and never answers (until the deliverer's 2 s timeout).
    let open = 0;
    const hanging = http.createServer((req) => {
      open++;
      req.on("close", () => open--);
    });
    await new Promise<void>((r) => hanging.listen(0, "127.0.0.1", r));
    const receiver = await startReceiver();
    try {
      await ngpu.apps.deploy({ name: "echo-hang", runtime: builtin("echo") });
      const stuck = await ngpu.webhooks.create({ app: "echo-hang", url: `http://127.0.0.1:${(hanging.address() as AddressInfo).port}/`, events: [WebhookEventType.COMPLETED] });
      await ngpu.tasks.run({ app: "echo-hang", input: {} });
      await eventually(() => (open > 0 ? true : undefined));
      // While that send hangs, another webhook's events still go out.
      const { task } = await ngpu.tasks.submit({ app: "echo-hang", input: { n: 1 }, webhook: { url: receiver.url, events: [WebhookEventType.COMPLETED] } });
      await eventually(() => receiver.events().find((e) => e.event.task.id === task.id));
      expect(open).toBeGreaterThan(0);
      await ngpu.webhooks.delete(stuck.id);
    } finally {
      hanging.closeAllConnections();
      await new Promise<void>((r) => hanging.close(() => r()));
      await receiver.close();
    }
  });

  it("several replicas share the outbox (SKIP LOCKED): every event is delivered once", async () => {
    const receiver = await startReceiver();
    const replica = await net.addReplica();
    try {
      await ngpu.apps.deploy({ name: "echo-many", runtime: builtin("echo") });
      const hook = await ngpu.webhooks.create({ app: "echo-many", url: receiver.url, events: [WebhookEventType.COMPLETED] });
      const tasks = await Promise.all(Array.from({ length: 30 }, (_, i) => ngpu.tasks.submit({ app: "echo-many", input: { i } })));
      await Promise.all(tasks.map((t) => ngpu.tasks.wait(t.task.id)));
      await eventually(() => (receiver.received.length >= 30 ? true : undefined));
      // Time for a duplicate to show up, if claims were not exclusive.
      await new Promise((r) => setTimeout(r, 300));
      const ids = receiver.events().map((e) => e.event.id);
      expect(new Set(ids).size).toBe(30);
      expect(ids).toHaveLength(30);
      expect(new Set(receiver.events().map((e) => e.event.task.id))).toEqual(new Set(tasks.map((t) => t.task.id)));
      await ngpu.webhooks.delete(hook.id);
    } finally {
      await replica.shutdown();
      await receiver.close();
    }
  });

  it("on a network that keeps webhooks off private addresses, private targets are refused at create, and a name resolving to one fails at once", async () => {
    const shared = await startTestNetwork({ webhooks: { allowPrivateTargets: false, pollIntervalMs: 50, retryBaseMs: 200, retryMaxMs: 400 } });
    const receiver = await startReceiver();
    const sharedClient = client(shared.url, shared.apiKey);
    const sharedWorker = await startTestWorker(shared);
    try {
      await sharedClient.apps.deploy({ name: "echo", runtime: builtin("echo") });
      const port = new URL(receiver.url).port;
      for (const url of [`http://127.0.0.1:${port}/x`, "http://169.254.169.254/latest", `http://[::1]:${port}/x`, `http://localhost:${port}/x`]) {
        const refused = await sharedClient.webhooks.create({ app: "echo", url }).then(() => undefined, (e: unknown) => ConnectError.from(e));
        expect(refused?.code, url).toBe(Code.InvalidArgument);
        expect(refused?.rawMessage, url).toMatch(/^url: .* (is loopback|is a private, loopback or link-local address)/);
      }
      const bySubmit = await sharedClient.tasks.submit({ app: "echo", webhook: { url: `http://127.0.0.1:${port}/x` } }).then(() => undefined, (e: unknown) => ConnectError.from(e));
      expect(bySubmit?.rawMessage).toMatch(/^webhook\.url: 127\.0\.0\.1 is a private/);
      // This machine's name resolves to loopback (/etc/hosts): only the delivery can tell, and it fails for good at once.
      const name = hostname();
      const byName = await sharedClient.tasks.submit({ app: "echo", webhook: { url: `http://${name}:${port}/x`, events: [WebhookEventType.COMPLETED] } });
      expect((await sharedClient.tasks.wait(byName.task.id)).state).toBe(TaskState.SUCCEEDED);
      const d = await eventually(async () => (await sharedClient.webhooks.deliveries({ taskId: byName.task.id })).deliveries.find((x) => x.state === WebhookDeliveryState.FAILED));
      expect(d.attemptCount).toBe(1);
      expect(d.lastStatusCode).toBe(0);
      expect(d.lastError).toMatch(new RegExp(`^${name} resolves to a private address`));
      expect(receiver.received).toHaveLength(0);
    } finally {
      await sharedWorker.shutdown(0);
      await sharedClient.close();
      await receiver.close();
      await shared.close();
    }
  });

  it("refuses bad input naming the field, and keeps each workspace's webhooks to itself", async () => {
    const bad = async (p: Promise<unknown>) => {
      const err = await p.then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
      return err && { code: err.code, message: err.rawMessage };
    };
    expect(await bad(ngpu.webhooks.create({ app: "echo", url: "ftp://x" }))).toEqual({ code: Code.InvalidArgument, message: "url: must be an http:// or https:// URL" });
    expect(await bad(ngpu.webhooks.create({ app: "echo", url: "not a url" }))).toEqual({ code: Code.InvalidArgument, message: "url: is not a URL" });
    expect(await bad(ngpu.webhooks.create({ app: "echo", url: "http://x", events: [42 as WebhookEventType] }))).toEqual({ code: Code.InvalidArgument, message: "events[0]: is not a webhook event type" });
    expect(await bad(ngpu.tasks.submit({ app: "echo", webhook: { url: "" } }))).toEqual({ code: Code.InvalidArgument, message: "webhook.url: is required" });
    expect((await bad(ngpu.webhooks.create({ app: "nope", url: "http://x" })))?.code).toBe(Code.NotFound);

    const hook = await ngpu.webhooks.create({ app: "echo", url: "http://127.0.0.1:9/x" });
    const other = await net.newWorkspace();
    const stranger = client(net.url, other.apiKey);
    try {
      expect((await stranger.webhooks.list()).webhooks).toEqual([]);
      expect((await stranger.webhooks.deliveries()).deliveries).toEqual([]);
      expect((await bad(stranger.webhooks.delete(hook.id)))?.code).toBe(Code.NotFound);
      const { deliveries } = await ngpu.webhooks.deliveries();
      expect((await bad(stranger.webhooks.getDelivery(deliveries[0]!.id)))?.code).toBe(Code.NotFound);
      expect((await bad(stranger.webhooks.replay(deliveries[0]!.id)))?.code).toBe(Code.NotFound);
    } finally {
      await stranger.close();
      await ngpu.webhooks.delete(hook.id);
    }
    // The listing hides secrets.
    expect((await ngpu.webhooks.list()).webhooks.every((w) => w.secret === "")).toBe(true);
  });
});
