// End to end: the demo style app started by the process runtime, predictions run through
// runPrediction with real webhooks, and the raw Cog protocol checked where it matters.
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InstanceExitedError, runPrediction, type PredictionEvent } from "../../../worker/runtime/app-instance.js";
import { inputSchemaOf } from "../../../worker/runtime/cog-protocol.js";
import type { Progress } from "../../../worker/runtime/parse-progress.js";
import { startProcessInstance, type ProcessInstance } from "../../../worker/runtime/process-runtime.js";
import { startWebhookReceiver, type WebhookReceiver } from "../../../worker/runtime/webhook-receiver.js";
import { processAlive, startDemoApp, waitUntil } from "./demo-app.js";

let instance: ProcessInstance;
let receiver: WebhookReceiver;
let seq = 0;
const newId = () => `test-${process.pid}-${++seq}`;

beforeAll(async () => {
  [instance, receiver] = await Promise.all([startDemoApp(), startWebhookReceiver()]);
});
afterAll(async () => {
  await Promise.all([instance?.stop(), receiver?.close()]);
  if (instance) expect(processAlive(instance.pid)).toBe(false);
});

async function decodeDataUri(uri: unknown) {
  expect(typeof uri).toBe("string");
  const m = /^data:image\/(png|jpeg);base64,(.+)$/.exec(uri as string);
  expect(m).not.toBeNull();
  return sharp(Buffer.from(m?.[2] ?? "", "base64")).metadata();
}

describe("runPrediction on the demo style app", () => {
  it("runs a prediction end to end: real image out, progress in order", async () => {
    const events: PredictionEvent[] = [];
    const outcome = await runPrediction(instance, receiver, {
      id: newId(),
      input: { style: "sketch", strength: 0.7, size: 256, steps: 6, output_format: "png" },
      onEvent: (e) => events.push(e),
    });
    expect(outcome.status).toBe("succeeded");
    if (outcome.status !== "succeeded") return;

    const meta = await decodeDataUri(outcome.output);
    expect(meta.format).toBe("png");
    // The shipped photo is 428x277: the long side is scaled to `size`.
    expect(meta.width).toBe(256);
    expect(meta.height).toBe(166);
    expect(outcome.predictTimeMs).toBeGreaterThanOrEqual(6 * 25);
    expect(outcome.logs).toContain("style sketch, strength 0.70, 6 tiles");

    expect(events[0]).toEqual({ type: "started" });
    const progress = events.filter((e): e is { type: "progress"; progress: Progress } => e.type === "progress").map((e) => e.progress);
    expect(progress.map((p) => p.step)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(progress.every((p) => p.totalSteps === 6)).toBe(true);
    expect(progress.at(-1)?.percent).toBe(100);
    // Output comes after the last progress, once.
    const outputs = events.flatMap((e, i) => (e.type === "output" ? [i] : []));
    expect(outputs).toHaveLength(1);
    expect(outputs[0]).toBeGreaterThan(events.lastIndexOf(events.filter((e) => e.type === "progress").at(-1) as PredictionEvent));
    // The streamed log deltas add up to the full logs.
    expect(events.flatMap((e) => (e.type === "logs" ? [e.text] : [])).join("")).toBe(outcome.logs);
  });

  it("works with Cog's coalesced webhooks too (500 ms interval): fewer events, same end", async () => {
    const coalescing = await startDemoApp({ env: { STYLE_APP_SETUP_MS: "0", STYLE_APP_STEP_DELAY_MS: "100", STYLE_APP_WEBHOOK_INTERVAL_MS: "500" } });
    try {
      const progress: Progress[] = [];
      const outcome = await runPrediction(coalescing, receiver, {
        id: newId(),
        input: { style: "sepia", size: 128, steps: 10 },
        onEvent: (e) => e.type === "progress" && progress.push(e.progress),
      });
      expect(outcome.status).toBe("succeeded");
      expect(progress.length).toBeGreaterThanOrEqual(1);
      expect(progress.length).toBeLessThan(11);
      const steps = progress.map((p) => p.step);
      expect(steps).toEqual([...steps].sort((a, b) => a - b));
      expect((await decodeDataUri((outcome as { output: unknown }).output)).format).toBe("jpeg");
    } finally {
      await coalescing.stop();
    }
  });

  it("cancels mid-run: the app stops work and confirms canceled", async () => {
    const controller = new AbortController();
    const steps: number[] = [];
    const t0 = performance.now();
    const outcome = await runPrediction(instance, receiver, {
      id: newId(),
      // 32 tiles x 25 ms: long enough to cancel in the middle.
      input: { style: "oil", steps: 32 },
      signal: controller.signal,
      onEvent: (e) => {
        if (e.type !== "progress") return;
        steps.push(e.progress.step);
        if (e.progress.step === 3) controller.abort();
      },
    });
    expect(outcome).toMatchObject({ status: "canceled", confirmed: true });
    expect(Math.max(...steps)).toBeLessThan(32);
    expect(performance.now() - t0).toBeLessThan(5_000);
    // The slot is free again.
    expect((await instance.client.healthCheck()).status).toBe("READY");
  });

  it("returns invalid_input with the app's 422 details, without running anything", async () => {
    const outcome = await runPrediction(instance, receiver, {
      id: newId(),
      input: { style: "cubism", strength: 1.5, size: 100.5 },
    });
    expect(outcome).toMatchObject({ status: "failed", code: "invalid_input" });
    if (outcome.status !== "failed") return;
    expect(outcome.error).toContain("style: value is not a valid enumeration member");
    expect(outcome.error).toContain("strength: ensure this value is less than or equal to 1");
    expect(outcome.issues?.map((i) => i.loc.join("."))).toEqual(["body.input.style", "body.input.strength", "body.input.size"]);
  });

  it("reports a prediction that fails inside the app as failed, with its error", async () => {
    const outcome = await runPrediction(instance, receiver, {
      id: newId(),
      input: { image: "data:image/png;base64,bm90IGFuIGltYWdl" },
    });
    expect(outcome).toMatchObject({ status: "failed", code: "prediction_failed" });
    expect((outcome as { error: string }).error).toMatch(/could not decode image/);
  });

  it("accepts an input image as a data URI", async () => {
    const png = await sharp({ create: { width: 40, height: 80, channels: 3, background: "#3366cc" } }).png().toBuffer();
    const outcome = await runPrediction(instance, receiver, {
      id: newId(),
      input: { image: `data:image/png;base64,${png.toString("base64")}`, style: "posterize", size: 64, steps: 2 },
    });
    expect(outcome.status).toBe("succeeded");
    const meta = await decodeDataUri((outcome as { output: unknown }).output);
    expect([meta.width, meta.height]).toEqual([32, 64]);
  });

  it("stopping the instance mid-prediction: the app cancels, reports it, then exits", async () => {
    const doomed = await startDemoApp();
    const steps: number[] = [];
    let stopping: Promise<unknown> | undefined;
    const outcome = await runPrediction(doomed, receiver, {
      id: newId(),
      input: { steps: 32 },
      onEvent: (e) => {
        if (e.type !== "progress") return;
        steps.push(e.progress.step);
        if (e.progress.step === 2) stopping = doomed.stop();
      },
    });
    expect(outcome).toMatchObject({ status: "canceled", confirmed: true });
    await stopping;
    expect(Math.max(...steps)).toBeLessThan(32);
    expect(await doomed.exited).toMatchObject({ code: 0, stopped: true });
    expect(processAlive(doomed.pid)).toBe(false);
  });

  it("rejects with CogError busy when the instance already runs another prediction", async () => {
    const controller = new AbortController();
    const first = runPrediction(instance, receiver, { id: newId(), input: { steps: 32 }, signal: controller.signal });
    try {
      // Wait for the app to report BUSY rather than sleeping.
      for (;;) if ((await instance.client.healthCheck()).status === "BUSY") break;
      await expect(runPrediction(instance, receiver, { id: newId(), input: {} })).rejects.toMatchObject({ name: "CogError", code: "busy", status: 409 });
    } finally {
      controller.abort();
      expect((await first).status).toBe("canceled");
    }
  });
});

describe("the demo app's Cog protocol", () => {
  it("serves an OpenAPI document whose Input schema has types, enums and bounds", async () => {
    const doc = await instance.client.openapi();
    const schema = inputSchemaOf(doc);
    expect(schema).toMatchObject({
      title: "Input",
      type: "object",
      properties: {
        image: { type: "string", format: "uri" },
        style: { type: "string", enum: ["sketch", "sepia", "posterize", "oil", "blur"], default: "sketch" },
        strength: { type: "number", minimum: 0, maximum: 1, default: 0.6 },
        size: { type: "integer", minimum: 64, maximum: 512, default: 512 },
        steps: { type: "integer", minimum: 1, maximum: 32 },
        output_format: { type: "string", enum: ["jpeg", "png"] },
      },
    });
    expect((doc.components as { schemas: Record<string, unknown> }).schemas.Output).toEqual({ title: "Output", type: "string", format: "uri" });
  });

  it("treats a repeated PUT with the same id as the same prediction, and answers 404 to cancels of unknown ids", async () => {
    const id = newId();
    const events: string[] = [];
    const sub = receiver.subscribe(id, (e) => events.push(e.type));
    try {
      const url = sub.webhookUrl();
      const first = await instance.client.predict(id, { steps: 4 }, url);
      const again = await instance.client.predict(id, { steps: 4 }, url);
      expect(first).toMatchObject({ id, status: "starting" });
      expect(again.id).toBe(id);
      await waitUntil(() => events.includes("completed"), 5_000, "completed webhook");
      expect(events.filter((e) => e === "completed")).toHaveLength(1);
      expect(events[0]).toBe("start");
      expect(await instance.client.cancel(id)).toBe(false);
    } finally {
      sub.close();
    }
  });

  it("answers a synchronous POST with the finished prediction", async () => {
    const res = await fetch(`${instance.baseUrl}/predictions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ input: { style: "blur", size: 64, steps: 1 } }),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { status: string; output: string; metrics: { predict_time: number } };
    expect(body.status).toBe("succeeded");
    expect(body.metrics.predict_time).toBeGreaterThan(0);
    expect((await decodeDataUri(body.output)).width).toBe(64);
  });
});

// A minimal Cog stand-in for the runner's edge cases. It accepts predictions, then per MODE:
// "hang" never finishes and ignores cancels, "exit" dies, "chatty" posts one logs webhook.
const STUB_COG_APP = `
const http = require("node:http");
const mode = process.env.MODE;
http.createServer((req, res) => {
  let body = "";
  req.on("data", (c) => (body += c));
  req.on("end", () => {
    const json = (status, value) => { res.writeHead(status, { "content-type": "application/json" }); res.end(JSON.stringify(value)); };
    if (req.url === "/health-check") return json(200, { status: "READY" });
    if (req.method === "PUT") {
      const p = JSON.parse(body);
      json(202, { id: p.id, status: "starting", input: p.input });
      if (mode === "exit") setTimeout(() => { console.error("CUDA error: an illegal memory access was encountered"); process.exit(1); }, 100);
      if (mode === "chatty") fetch(p.webhook, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ id: p.id, status: "processing", logs: "hello\\n" }) });
      return;
    }
    if (req.url.endsWith("/cancel")) return json(200, {});
    json(404, { detail: "Not Found" });
  });
}).listen(Number(process.env.PORT), "127.0.0.1");
`;

describe("runPrediction edge cases", () => {
  const startStub = (mode: string) =>
    startProcessInstance({ command: [process.execPath, "-e", STUB_COG_APP], env: { MODE: mode }, stopGraceMs: 500 });

  it("resolves canceled (unconfirmed) when the app does not confirm a cancel in time", async () => {
    const stub = await startStub("hang");
    try {
      const controller = new AbortController();
      const pending = runPrediction(stub, receiver, { id: newId(), input: {}, signal: controller.signal, cancelTimeoutMs: 300 });
      setTimeout(() => controller.abort(), 50);
      const t0 = performance.now();
      expect(await pending).toEqual({ status: "canceled", confirmed: false, logs: "" });
      expect(performance.now() - t0).toBeLessThan(2_000);
    } finally {
      await stub.stop();
    }
  });

  it("rejects with InstanceExitedError, carrying the app's last output, when the app dies mid-prediction", async () => {
    const stub = await startStub("exit");
    const err = await runPrediction(stub, receiver, { id: newId(), input: {} }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InstanceExitedError);
    expect(err).toMatchObject({ code: "instance_exited", exit: { code: 1, stopped: false } });
    expect((err as Error).message).toContain("illegal memory access");
    await stub.stop();
  });

  it("rejects with the listener's error when onEvent throws", async () => {
    const stub = await startStub("chatty");
    try {
      const err = await runPrediction(stub, receiver, {
        id: newId(),
        input: {},
        onEvent: (e) => {
          if (e.type === "logs") throw new Error("bookkeeping bug");
        },
      }).catch((e: unknown) => e);
      expect((err as Error).message).toBe("bookkeeping bug");
    } finally {
      await stub.stop();
    }
  });

  it("rejects with the signal's reason when aborted before it starts", async () => {
    await expect(runPrediction(instance, receiver, { id: newId(), input: {}, signal: AbortSignal.abort(new Error("too late")) })).rejects.toThrow("too late");
  });
});
