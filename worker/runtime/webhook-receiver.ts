// Receives the webhooks Cog apps post while predictions run and hands them, as typed events, to
// whoever waits on that prediction.
//
// Cog's webhook body is just the prediction object (no event name), `logs` is cumulative, and
// `output`/`logs` sends are coalesced (at most one per 500 ms). So the event kind is inferred here
// by comparing each body with the previous one for the same prediction: new log text → `logs`
// (with the delta), changed output → `output`, a terminal status → `completed`. That way one
// coalesced body can yield several events, and duplicates (Cog retries terminal webhooks) yield none.
import { randomBytes, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { isTerminalStatus, parsePrediction, type CogPrediction } from "./cog-protocol.js";

/** A typed webhook event for one prediction. */
export type CogWebhookEvent =
  /** The first webhook for the prediction (sent once, even when Cog's own `start` was filtered or lost). */
  | { readonly type: "start"; readonly prediction: CogPrediction }
  /** New log text since the previous event: only the new part, in `newLogs`. */
  | { readonly type: "logs"; readonly prediction: CogPrediction; readonly newLogs: string }
  /** The output changed (iterator apps grow it; others set it once, just before completing). */
  | { readonly type: "output"; readonly prediction: CogPrediction; readonly output: unknown }
  /** The prediction reached `succeeded`, `failed` or `canceled`. The last event for it. */
  | { readonly type: "completed"; readonly prediction: CogPrediction };

export type CogWebhookListener = (event: CogWebhookEvent) => void;

export interface WebhookReceiverOptions {
  /**
   * Address to listen on (default `127.0.0.1`). Containers cannot reach the host's loopback: with
   * the docker runtime listen on the bridge gateway (e.g. `172.17.0.1`) or `0.0.0.0`; each
   * webhook URL carries a secret token, so a wider bind does not let others post events.
   */
  readonly host?: string;
  /** Port (default 0: any free one). */
  readonly port?: number;
  /** Largest webhook body accepted, bytes (default 64 MiB: outputs can be inline `data:` files). */
  readonly maxBodyBytes?: number;
  /**
   * Receives exceptions thrown by listeners. Default: rethrown on a fresh stack, which crashes the
   * process. A throwing listener is a bug, and a bug in task bookkeeping must not pass silently.
   */
  readonly onListenerError?: (err: unknown, predictionId: string) => void;
}

export interface WebhookSubscription {
  readonly predictionId: string;
  /**
   * The URL to give the app as `webhook`. It carries a per-subscription secret, so nothing else
   * that can reach the receiver can post events for this prediction.
   * @param host host name the app uses to reach this receiver (default: the listening host, or
   *   loopback when bound to a wildcard; `host.docker.internal` for containers)
   */
  webhookUrl(host?: string): string;
  /** Stops delivery; later posts for this prediction are answered 404. */
  close(): void;
}

export interface WebhookReceiver {
  readonly host: string;
  readonly port: number;
  /**
   * Registers the listener for one prediction. Subscribe before starting the prediction, so the
   * first webhook cannot arrive before anyone listens. One subscription per prediction id at a time.
   */
  subscribe(predictionId: string, listener: CogWebhookListener): WebhookSubscription;
  /** Stops listening and closes open connections. */
  close(): Promise<void>;
}

export const DEFAULT_WEBHOOK_MAX_BODY_BYTES = 64 * 1024 * 1024;

interface Entry {
  readonly token: Buffer;
  readonly listener: CogWebhookListener;
  started: boolean;
  completed: boolean;
  logs: string;
  outputJson: string;
}

class BodyTooLargeError extends Error {}

/** Starts the receiver; resolves once it is listening. */
export async function startWebhookReceiver(options: WebhookReceiverOptions = {}): Promise<WebhookReceiver> {
  const host = options.host ?? "127.0.0.1";
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_WEBHOOK_MAX_BODY_BYTES;
  const onListenerError =
    options.onListenerError ??
    ((err: unknown) => {
      queueMicrotask(() => {
        throw err;
      });
    });
  const entries = new Map<string, Entry>();

  const dispatch = (id: string, entry: Entry, prediction: CogPrediction): void => {
    const events: CogWebhookEvent[] = [];
    if (!entry.started) {
      entry.started = true;
      events.push({ type: "start", prediction });
    }
    const logs = prediction.logs ?? "";
    // Cumulative logs only grow; a shorter text is a stale body. If an app rewrote its logs rather
    // than appending, pass the whole new text on.
    if (logs.length > entry.logs.length) {
      const newLogs = logs.startsWith(entry.logs) ? logs.slice(entry.logs.length) : logs;
      entry.logs = logs;
      events.push({ type: "logs", prediction, newLogs });
    }
    const output = prediction.output ?? null;
    const outputJson = typeof output === "string" ? output : JSON.stringify(output);
    if (output !== null && outputJson !== entry.outputJson) {
      entry.outputJson = outputJson;
      events.push({ type: "output", prediction, output });
    }
    if (isTerminalStatus(prediction.status)) {
      entry.completed = true;
      events.push({ type: "completed", prediction });
    }
    for (const event of events) {
      try {
        entry.listener(event);
      } catch (err) {
        onListenerError(err, id);
      }
    }
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? "/", "http://receiver");
    const m = /^\/webhook\/([^/]+)\/?$/.exec(url.pathname);
    if (!m) return reply(res, 404, "not found");
    if (req.method !== "POST") return reply(res, 405, "method not allowed");
    let id: string;
    try {
      id = decodeURIComponent(m[1] ?? "");
    } catch {
      return reply(res, 400, "bad prediction id");
    }
    const entry = entries.get(id);
    const token = Buffer.from(url.searchParams.get("token") ?? "", "utf8");
    if (!entry || token.length !== entry.token.length || !timingSafeEqual(token, entry.token)) {
      // Same answer for unknown id and wrong token: a prober learns nothing. 404 also stops Cog's retries.
      req.resume();
      return reply(res, 404, "no such prediction");
    }
    const body = await readBody(req, maxBodyBytes);
    let prediction: CogPrediction | undefined;
    try {
      prediction = parsePrediction(JSON.parse(body.toString("utf8")));
    } catch {
      prediction = undefined;
    }
    if (!prediction) return reply(res, 400, "body is not a prediction object");
    // After `completed`, anything more is a retry or a straggler: acknowledge it and move on.
    if (!entry.completed && entries.get(id) === entry) dispatch(id, entry, prediction);
    reply(res, 200, "");
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (err instanceof BodyTooLargeError) {
        reply(res, 413, err.message);
        req.destroy();
        return;
      }
      if (!res.headersSent) reply(res, 500, "internal error");
      else res.destroy();
    });
  });
  // Apps keep connections alive between webhooks; idle ones should not pin the receiver open.
  server.keepAliveTimeout = 5_000;

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  // A wildcard bind is not an address anyone can post to; local apps reach it on loopback.
  const defaultUrlHost = host === "0.0.0.0" ? "127.0.0.1" : host === "::" ? "::1" : host;

  return {
    host,
    port,
    subscribe(predictionId, listener) {
      if (entries.has(predictionId)) throw new Error(`webhook receiver: prediction ${predictionId} already has a subscriber`);
      const tokenText = randomBytes(16).toString("hex");
      const entry: Entry = { token: Buffer.from(tokenText, "utf8"), listener, started: false, completed: false, logs: "", outputJson: "null" };
      entries.set(predictionId, entry);
      return {
        predictionId,
        webhookUrl(urlHost = defaultUrlHost) {
          const h = urlHost.includes(":") && !urlHost.startsWith("[") ? `[${urlHost}]` : urlHost;
          return `http://${h}:${port}/webhook/${encodeURIComponent(predictionId)}?token=${tokenText}`;
        },
        close() {
          if (entries.get(predictionId) === entry) entries.delete(predictionId);
        },
      };
    },
    async close() {
      entries.clear();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

function reply(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

async function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) throw new BodyTooLargeError(`webhook body larger than ${maxBytes} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}
