import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWebhookReceiver, type CogWebhookEvent, type WebhookReceiver } from "../../../worker/runtime/webhook-receiver.js";

const post = (url: string, body: unknown) =>
  fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: typeof body === "string" ? body : JSON.stringify(body) });

// A compact view of events: kind plus the part that matters for it.
const summary = (e: CogWebhookEvent) =>
  e.type === "logs" ? `logs:${JSON.stringify(e.newLogs)}` : e.type === "output" ? `output:${JSON.stringify(e.output)}` : `${e.type}:${e.prediction.status}`;

describe("webhook receiver", () => {
  let receiver: WebhookReceiver;
  const listenerErrors: unknown[] = [];

  beforeAll(async () => {
    receiver = await startWebhookReceiver({ maxBodyBytes: 64 * 1024, onListenerError: (err) => listenerErrors.push(err) });
  });
  afterAll(async () => {
    await receiver.close();
  });

  it("infers start, log deltas, output and completion from cumulative prediction bodies", async () => {
    const events: string[] = [];
    const sub = receiver.subscribe("p1", (e) => events.push(summary(e)));
    const url = sub.webhookUrl();
    expect(url).toMatch(new RegExp(`^http://127\\.0\\.0\\.1:${receiver.port}/webhook/p1\\?token=[0-9a-f]{32}$`));

    const base = { id: "p1", input: {}, error: null, output: null };
    for (const body of [
      { ...base, status: "processing", logs: "" },
      { ...base, status: "processing", logs: "a\n" },
      // Coalesced send: two new lines and a first output in one body.
      { ...base, status: "processing", logs: "a\nb\nc\n", output: ["x"] },
      { ...base, status: "processing", logs: "a\nb\nc\n", output: ["x"] },
      { ...base, status: "succeeded", logs: "a\nb\nc\nd\n", output: ["x", "y"], metrics: { predict_time: 1.5 } },
      // Cog retries terminal webhooks: a duplicate must change nothing.
      { ...base, status: "succeeded", logs: "a\nb\nc\nd\n", output: ["x", "y"] },
    ]) {
      const res = await post(url, body);
      expect(res.status).toBe(200);
    }
    expect(events).toEqual([
      "start:processing",
      'logs:"a\\n"',
      'logs:"b\\nc\\n"',
      'output:["x"]',
      'logs:"d\\n"',
      'output:["x","y"]',
      "completed:succeeded",
    ]);
    sub.close();
  });

  it("synthesises start when the first body it sees is already terminal", async () => {
    const events: string[] = [];
    const sub = receiver.subscribe("p2", (e) => events.push(summary(e)));
    await post(sub.webhookUrl(), { id: "p2", status: "failed", logs: "boom\n", error: "boom", output: null });
    expect(events).toEqual(["start:failed", 'logs:"boom\\n"', "completed:failed"]);
    sub.close();
  });

  it("ignores stale, shorter log text", async () => {
    const events: string[] = [];
    const sub = receiver.subscribe("p3", (e) => events.push(summary(e)));
    await post(sub.webhookUrl(), { status: "processing", logs: "one\ntwo\n" });
    await post(sub.webhookUrl(), { status: "processing", logs: "one\n" });
    expect(events).toEqual(["start:processing", 'logs:"one\\ntwo\\n"']);
    sub.close();
  });

  it("answers 404 to unknown predictions, wrong tokens and closed subscriptions, and 405 to GET", async () => {
    const events: string[] = [];
    const sub = receiver.subscribe("p4", (e) => events.push(summary(e)));
    const good = new URL(sub.webhookUrl());
    const wrong = new URL(good);
    wrong.searchParams.set("token", "0".repeat(32));
    expect((await post(wrong.href, { status: "processing" })).status).toBe(404);
    expect((await post(good.href.replace("/p4?", "/nope?"), { status: "processing" })).status).toBe(404);
    expect((await fetch(good, { method: "GET" })).status).toBe(405);
    expect(events).toEqual([]);
    sub.close();
    expect((await post(good.href, { status: "processing" })).status).toBe(404);
  });

  it("rejects bodies that are not prediction objects, and oversized ones", async () => {
    const sub = receiver.subscribe("p5", () => {});
    expect((await post(sub.webhookUrl(), "not json")).status).toBe(400);
    expect((await post(sub.webhookUrl(), { status: "exploded" })).status).toBe(400);
    expect((await post(sub.webhookUrl(), { status: "processing", logs: "x".repeat(100 * 1024) })).status).toBe(413);
    sub.close();
  });

  it("refuses a second subscriber for the same prediction", () => {
    const sub = receiver.subscribe("p6", () => {});
    expect(() => receiver.subscribe("p6", () => {})).toThrow(/already has a subscriber/);
    sub.close();
    receiver.subscribe("p6", () => {}).close();
  });

  it("reports a throwing listener and still answers the app", async () => {
    const sub = receiver.subscribe("p7", () => {
      throw new Error("listener bug");
    });
    expect((await post(sub.webhookUrl(), { status: "processing" })).status).toBe(200);
    expect(listenerErrors).toHaveLength(1);
    expect((listenerErrors[0] as Error).message).toBe("listener bug");
    sub.close();
  });

  it("builds URLs for other host names (containers) and brackets IPv6 literals", () => {
    const sub = receiver.subscribe("a b/c", () => {});
    expect(sub.webhookUrl("host.docker.internal")).toMatch(/^http:\/\/host\.docker\.internal:\d+\/webhook\/a%20b%2Fc\?token=/);
    expect(sub.webhookUrl("::1")).toMatch(/^http:\/\/\[::1\]:\d+\//);
    sub.close();
  });
});

describe("webhook receiver on a wildcard address", () => {
  it("hands out loopback URLs by default and still delivers", async () => {
    const wide = await startWebhookReceiver({ host: "0.0.0.0" });
    try {
      const events: string[] = [];
      const sub = wide.subscribe("w1", (e) => events.push(e.type));
      expect(sub.webhookUrl()).toMatch(/^http:\/\/127\.0\.0\.1:/);
      expect((await post(sub.webhookUrl(), { status: "succeeded", output: 1 })).status).toBe(200);
      expect(events).toEqual(["start", "output", "completed"]);
      sub.close();
    } finally {
      await wide.close();
    }
  });
});
