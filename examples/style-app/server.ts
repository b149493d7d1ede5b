// NGPU demo app: an image style service that speaks Cog's HTTP prediction protocol.
//
//   node --import tsx examples/style-app/server.ts
//
// Environment (all optional):
//   PORT                              port to listen on (default 5000)
//   HOST                              address to bind (default 127.0.0.1)
//   STYLE_APP_STEP_DELAY_MS           pause after each tile, ms (default 250; tests use ~20)
//   STYLE_APP_SETUP_MS                least time setup takes, ms (default 500)
//   STYLE_APP_WEBHOOK_INTERVAL_MS     least time between output/logs webhooks, ms (default 500, as Cog)
//   STYLE_APP_FAIL_SETUP              "1" makes setup fail, to exercise SETUP_FAILED handling
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { PredictError, setupPredictor, type Predictor } from "./predictor.js";
import { openApiDocument, validateInput, type StyleInput, type ValidationErrorItem } from "./schema.js";
import { createWebhookSender, WEBHOOK_EVENT_KINDS, type WebhookEventKind, type WebhookSender } from "./webhook-sender.js";

interface Config {
  port: number;
  host: string;
  stepDelayMs: number;
  setupMs: number;
  webhookIntervalMs: number;
  failSetup: boolean;
}

function intFromEnv(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new Error(`${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  }
  return value;
}

function loadConfig(): Config {
  return {
    port: intFromEnv("PORT", 5000, 0, 65535),
    host: process.env.HOST || "127.0.0.1",
    stepDelayMs: intFromEnv("STYLE_APP_STEP_DELAY_MS", 250, 0, 60_000),
    setupMs: intFromEnv("STYLE_APP_SETUP_MS", 500, 0, 600_000),
    webhookIntervalMs: intFromEnv("STYLE_APP_WEBHOOK_INTERVAL_MS", 500, 0, 60_000),
    failSetup: process.env.STYLE_APP_FAIL_SETUP === "1",
  };
}

type Status = "starting" | "processing" | "succeeded" | "failed" | "canceled";

/** The prediction object of the Cog protocol (snake_case on the wire). */
interface Prediction {
  id: string;
  input: Record<string, unknown>;
  output: string | null;
  logs: string;
  error: string | null;
  status: Status;
  created_at: string;
  started_at: string | null;
  completed_at: string | null;
  metrics: { predict_time?: number };
}

interface Running {
  readonly prediction: Prediction;
  readonly controller: AbortController;
  /** Resolves with the final prediction once the completed webhook has been sent. */
  readonly done: Promise<Prediction>;
}

const MAX_BODY_BYTES = 64 * 1024 * 1024;

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: unknown,
  ) {
    super(`HTTP ${status}`);
  }
}

const config = loadConfig();
const setup = {
  status: "starting" as "starting" | "succeeded" | "failed",
  startedAt: new Date().toISOString(),
  completedAt: null as string | null,
  logs: "",
};
let predictor: Predictor | undefined;
let current: Running | undefined;
let shuttingDown = false;

const snapshot = (p: Prediction): Prediction => structuredClone(p);

function healthStatus(): string {
  if (setup.status === "starting") return "STARTING";
  if (setup.status === "failed") return "SETUP_FAILED";
  return current ? "BUSY" : "READY";
}

async function runSetup(): Promise<void> {
  const started = performance.now();
  const log = (line: string) => {
    setup.logs += `${line}\n`;
  };
  try {
    if (config.failSetup) throw new Error("setup failed on purpose (STYLE_APP_FAIL_SETUP=1)");
    predictor = await setupPredictor(new URL("./pier.jpg", import.meta.url), { stepDelayMs: config.stepDelayMs }, log);
    // Real models spend seconds loading weights; the floor keeps the demo's cold start visible.
    const remaining = config.setupMs - (performance.now() - started);
    if (remaining > 0) await sleep(remaining);
    setup.status = "succeeded";
    log(`setup done in ${Math.round(performance.now() - started)} ms`);
  } catch (err) {
    setup.status = "failed";
    log(`setup failed: ${(err as Error).stack ?? String(err)}`);
    process.stderr.write(setup.logs);
  } finally {
    setup.completedAt = new Date().toISOString();
  }
}

interface WebhookRequest {
  readonly url: string;
  readonly events: ReadonlySet<WebhookEventKind>;
}

function startPrediction(id: string, rawInput: Record<string, unknown>, input: StyleInput, webhookRequest: WebhookRequest | undefined): Running {
  const prediction: Prediction = {
    id,
    input: rawInput,
    output: null,
    logs: "",
    error: null,
    status: "starting",
    created_at: new Date().toISOString(),
    started_at: null,
    completed_at: null,
    metrics: {},
  };
  const controller = new AbortController();
  const webhook: WebhookSender | undefined =
    webhookRequest &&
    createWebhookSender({
      url: webhookRequest.url,
      events: webhookRequest.events,
      minIntervalMs: config.webhookIntervalMs,
      snapshot: () => snapshot(prediction),
      onError: (err) => process.stderr.write(`webhook for ${id} failed: ${(err as Error).message}\n`),
    });
  const run = async (): Promise<Prediction> => {
    // Let the caller answer the request (status `starting`) before anything else happens.
    await Promise.resolve();
    const t0 = performance.now();
    prediction.status = "processing";
    prediction.started_at = new Date().toISOString();
    webhook?.notify("start");
    try {
      if (!predictor) throw new Error("predictor is not set up");
      const output = await predictor.predict(input, {
        signal: controller.signal,
        log: (line) => {
          prediction.logs += `${line}\n`;
          webhook?.notify("logs");
        },
      });
      prediction.output = output;
      webhook?.notify("output");
      prediction.status = "succeeded";
    } catch (err) {
      if (controller.signal.aborted) {
        prediction.status = "canceled";
      } else {
        prediction.status = "failed";
        prediction.error = err instanceof PredictError ? err.message : String((err as Error).message ?? err);
        if (!(err instanceof PredictError)) process.stderr.write(`prediction ${id} failed: ${(err as Error).stack ?? String(err)}\n`);
      }
    }
    prediction.completed_at = new Date().toISOString();
    prediction.metrics.predict_time = (performance.now() - t0) / 1000;
    // Free the slot before announcing completion, so a caller reacting to the webhook with its
    // next prediction finds us READY, not BUSY.
    current = undefined;
    webhook?.notify("completed");
    await webhook?.flush();
    return prediction;
  };
  const running: Running = { prediction, controller, done: run() };
  current = running;
  return running;
}

function parseRequestBody(body: unknown, pathId: string | undefined) {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new HttpError(422, { detail: [{ loc: ["body"], msg: "value is not a valid dict", type: "type_error.dict" }] });
  }
  const req = body as Record<string, unknown>;
  const detail: ValidationErrorItem[] = [];
  let id = pathId;
  if (req.id !== undefined && req.id !== null) {
    if (typeof req.id !== "string") detail.push({ loc: ["body", "id"], msg: "str type expected", type: "type_error.str" });
    else if (pathId !== undefined && req.id !== pathId) {
      detail.push({ loc: ["body", "id"], msg: "prediction ID must match the ID supplied in the URL", type: "value_error" });
    } else id = req.id;
  }
  let webhook: string | undefined;
  if (req.webhook !== undefined && req.webhook !== null) {
    if (typeof req.webhook !== "string" || !/^https?:\/\//.test(req.webhook)) {
      detail.push({ loc: ["body", "webhook"], msg: "invalid or missing URL scheme", type: "value_error.url.scheme" });
    } else webhook = req.webhook;
  }
  let events = new Set<WebhookEventKind>(WEBHOOK_EVENT_KINDS);
  if (req.webhook_events_filter !== undefined && req.webhook_events_filter !== null) {
    const f = req.webhook_events_filter;
    if (!Array.isArray(f) || !f.every((e) => (WEBHOOK_EVENT_KINDS as readonly unknown[]).includes(e))) {
      detail.push({
        loc: ["body", "webhook_events_filter"],
        msg: `value is not a valid list of: ${WEBHOOK_EVENT_KINDS.map((e) => `'${e}'`).join(", ")}`,
        type: "type_error.enum",
      });
    } else events = new Set(f as WebhookEventKind[]);
  }
  const checked = validateInput(req.input);
  if (!checked.ok) detail.push(...checked.detail);
  if (detail.length > 0 || !checked.ok) throw new HttpError(422, { detail });
  const rawInput = typeof req.input === "object" && req.input !== null ? (req.input as Record<string, unknown>) : {};
  return { id: id ?? randomUUID().replaceAll("-", ""), input: checked.value, rawInput, webhook, events };
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, { detail: `request body is larger than ${MAX_BODY_BYTES} bytes` });
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString("utf8");
  if (text.trim() === "") return {};
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new HttpError(422, { detail: [{ loc: ["body", 0], msg: `invalid JSON: ${(err as Error).message}`, type: "value_error.jsondecode" }] });
  }
}

async function handlePredict(req: IncomingMessage, res: ServerResponse, pathId: string | undefined): Promise<void> {
  const body = await readJson(req);
  const respondAsync = /\brespond-async\b/.test(String(req.headers.prefer ?? ""));
  if (setup.status !== "succeeded") {
    throw new HttpError(503, { detail: setup.status === "failed" ? "Setup failed" : "Setup has not finished" });
  }
  if (shuttingDown) throw new HttpError(503, { detail: "Shutting down" });
  const parsed = parseRequestBody(body, pathId);

  let running: Running;
  if (current && current.prediction.id === parsed.id) {
    // Idempotent retry of the prediction already in flight: answer with its state, start nothing.
    running = current;
    if (respondAsync) return send(res, 202, snapshot(running.prediction));
  } else if (current) {
    throw new HttpError(409, { detail: "Already running a prediction" });
  } else {
    const webhook = parsed.webhook === undefined ? undefined : { url: parsed.webhook, events: parsed.events };
    running = startPrediction(parsed.id, parsed.rawInput, parsed.input, webhook);
    if (respondAsync) return send(res, 202, snapshot(running.prediction));
  }
  send(res, 200, await running.done);
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? "/", "http://app");
  const path = url.pathname.replace(/\/+$/, "") || "/";
  const method = req.method ?? "GET";
  let m: RegExpMatchArray | null;

  if (path === "/" && method === "GET") {
    return send(res, 200, {
      docs_url: "/docs",
      openapi_url: "/openapi.json",
      shutdown_url: "/shutdown",
      healthcheck_url: "/health-check",
      predictions_url: "/predictions",
      predictions_idempotent_url: "/predictions/{prediction_id}",
      predictions_cancel_url: "/predictions/{prediction_id}/cancel",
    });
  }
  if (path === "/health-check" && method === "GET") {
    return send(res, 200, {
      status: healthStatus(),
      setup: { started_at: setup.startedAt, completed_at: setup.completedAt, status: setup.status, logs: setup.logs },
    });
  }
  if (path === "/openapi.json" && method === "GET") return send(res, 200, openApiDocument());
  if (path === "/predictions" && method === "POST") return handlePredict(req, res, undefined);
  if ((m = path.match(/^\/predictions\/([^/]+)$/)) && method === "PUT") return handlePredict(req, res, decodeURIComponent(m[1] ?? ""));
  if ((m = path.match(/^\/predictions\/([^/]+)\/cancel$/)) && method === "POST") {
    const id = decodeURIComponent(m[1] ?? "");
    if (!current || current.prediction.id !== id) return send(res, 404, { detail: "Not Found" });
    current.controller.abort();
    return send(res, 200, {});
  }
  if (path === "/shutdown" && method === "POST") {
    send(res, 200, {});
    shutdown("POST /shutdown");
    return;
  }
  send(res, 404, { detail: "Not Found" });
}

const server = createServer((req, res) => {
  route(req, res).catch((err: unknown) => {
    if (err instanceof HttpError) return send(res, err.status, err.body);
    process.stderr.write(`request ${req.method} ${req.url} failed: ${(err as Error).stack ?? String(err)}\n`);
    if (!res.headersSent) send(res, 500, { detail: "Internal Server Error" });
    else res.destroy();
  });
});

function shutdown(reason: string): void {
  if (shuttingDown) return;
  shuttingDown = true;
  process.stdout.write(`shutting down (${reason})\n`);
  current?.controller.abort();
  const pending = current?.done ?? Promise.resolve();
  // Give the canceled prediction's completed webhook a moment to go out, then leave.
  void Promise.race([pending, sleep(3000)]).finally(() => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  });
}

process.on("SIGTERM", () => shutdown("SIGTERM"));
process.on("SIGINT", () => shutdown("SIGINT"));

server.listen(config.port, config.host, () => {
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : config.port;
  process.stdout.write(`style-app listening on http://${config.host}:${port} (setup ${config.setupMs} ms, step delay ${config.stepDelayMs} ms)\n`);
  void runSetup().then(() => process.stdout.write(`setup ${setup.status}\n`));
});
