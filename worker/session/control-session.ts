import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { pushable, type Pushable } from "it-pushable";
import { controlPlaneTlsOptions, untrustedCertificateHint } from "./tls-options.js";
import { type ConnectRequestSchema, type ConnectResponse, type HelloSchema, WorkerService } from "../../gen/ngpu/v1/worker_pb.js";
import type { Logger } from "../log.js";

type Outbound = MessageInitShape<typeof ConnectRequestSchema>;

export interface ControlSessionOptions {
  /** Control plane base URL, e.g. https://10.0.0.5:7700. */
  readonly url: string;
  /** For https://: the CA to trust and a pinned certificate fingerprint. */
  readonly tls?: { readonly ca?: Buffer; readonly pinSha256?: string };
  readonly logger: Logger;
  /** Built fresh for every (re)connect: it reports what the worker holds right now. */
  readonly hello: () => Promise<MessageInitShape<typeof HelloSchema>>;
  readonly onWelcome: (nodeId: string, telemetryIntervalMs: number) => void;
  /** Signs the control plane's challenge with the node key. */
  readonly prove: (nonce: Uint8Array) => Uint8Array;
  readonly onMessage: (message: ConnectResponse) => void;
  /** Called after each hello is sent, to re-send anything the old stream may have dropped. */
  readonly onConnected: () => void;
  /** Warm app ids for heartbeats. */
  readonly warmAppIds: () => string[];
  /** First reconnect delay; doubles up to maxBackoffMs, with jitter. Default 250 ms. */
  readonly initialBackoffMs?: number;
  /** Default 10000 ms. */
  readonly maxBackoffMs?: number;
}

export interface ControlSession {
  /** Sends on the current stream; dropped while disconnected. */
  send(message: Outbound): void;
  readonly connected: boolean;
  /** Ends the current stream and starts a new one (with a new hello). */
  reconnect(): void;
  /** Resolves after the first Welcome, or rejects with a permanent refusal (bad token). */
  readonly ready: Promise<string>;
  close(): Promise<void>;
}

/**
 * Keeps one bidirectional stream to the control plane open: hello first, then
 * heartbeats; on any failure it reconnects with exponential backoff and jitter
 * (so a restarted control plane is not stormed by every worker at once).
 * A refused enrollment token is final.
 */
export function startControlSession(options: ControlSessionOptions): ControlSession {
  const { logger } = options;
  const log = logger.child({ component: "session" });
  // HTTP/2 pings notice a control plane that vanished without closing the connection.
  const sessionManager = new Http2SessionManager(options.url, { pingIntervalMs: 5_000, pingTimeoutMs: 5_000 }, controlPlaneTlsOptions(options.tls));
  const transport = createGrpcTransport({ baseUrl: options.url, sessionManager });
  const client = createClient(WorkerService, transport);
  const stopped = new AbortController();
  let closing = false;
  let current: Pushable<Outbound> | undefined;
  let streamAbort: AbortController | undefined;
  let resolveReady!: (nodeId: string) => void;
  let rejectReady!: (err: Error) => void;
  const ready = new Promise<string>((resolve, reject) => ((resolveReady = resolve), (rejectReady = reject)));
  ready.catch(() => {});

  async function runOnce(): Promise<"welcomed" | "failed"> {
    const out = pushable<Outbound>({ objectMode: true });
    const abort = new AbortController();
    streamAbort = abort;
    const signal = AbortSignal.any([abort.signal, stopped.signal]);
    let heartbeat: NodeJS.Timeout | undefined;
    let welcomed = false;
    try {
      out.push({ message: { case: "hello", value: await options.hello() } });
      let seq = 0n;
      // An async generator, not the pushable itself: Connect calls return() on it expecting a promise.
      const requests = (async function* () {
        yield* out;
      })();
      for await (const message of client.connect(requests, { signal })) {
        const m = message.message;
        if (m.case === "challenge") {
          out.push({ message: { case: "proof", value: { signature: options.prove(m.value.nonce) } } });
        } else if (m.case === "welcome") {
          welcomed = true;
          current = out;
          options.onWelcome(m.value.nodeId, m.value.telemetryIntervalMs || 1000);
          resolveReady(m.value.nodeId);
          log.info({ node: m.value.nodeId }, "connected to control plane");
          heartbeat = setInterval(() => {
            out.push({ message: { case: "heartbeat", value: { seq: ++seq, time: timestampNow(), warmAppIds: options.warmAppIds() } } });
          }, m.value.heartbeatIntervalMs || 1000);
          options.onConnected();
        } else if (m.case === "rejection") {
          log.warn({ reason: m.value.reason, task: m.value.taskId, attempt: m.value.attemptId }, "control plane rejected a message");
        } else {
          options.onMessage(message);
        }
      }
      if (!closing) log.warn("control plane closed the stream");
    } catch (err) {
      if (stopped.signal.aborted) return "failed";
      const e = ConnectError.from(err);
      if (e.code === Code.Unauthenticated || e.code === Code.InvalidArgument || e.code === Code.PermissionDenied) {
        // Retrying cannot fix a refused token or key, a revoked node, or a hello the control plane rejects.
        log.error({ code: Code[e.code], err: e.rawMessage }, "control plane refused this worker; not reconnecting");
        rejectReady(new Error(`control plane refused this worker: ${e.rawMessage}`));
        stopped.abort();
        return "failed";
      }
      const hint = untrustedCertificateHint(err);
      log.warn({ code: Code[e.code], err: e.rawMessage, ...(hint ? { hint } : {}) }, "control stream failed");
    } finally {
      clearInterval(heartbeat);
      if (current === out) current = undefined;
      out.end();
    }
    return welcomed ? "welcomed" : "failed";
  }

  const loop = (async () => {
    const initial = options.initialBackoffMs ?? 250;
    const max = options.maxBackoffMs ?? 10_000;
    let backoff = initial;
    while (!stopped.signal.aborted && !closing) {
      const result = await runOnce();
      if (stopped.signal.aborted || closing) break;
      backoff = result === "welcomed" ? initial : Math.min(max, backoff * 2);
      // Full jitter: anywhere between half and all of the backoff.
      const delay = backoff / 2 + Math.random() * (backoff / 2);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, delay);
        stopped.signal.addEventListener("abort", () => (clearTimeout(t), resolve()), { once: true });
      });
    }
  })();

  return {
    send(message) {
      current?.push(message);
    },
    get connected() {
      return current !== undefined;
    },
    reconnect() {
      streamAbort?.abort();
    },
    ready,
    async close() {
      // Half-close first: the control plane handles everything already sent, then ends the
      // stream. Only if that takes too long is the stream cut.
      closing = true;
      current?.end();
      await Promise.race([loop, new Promise((r) => setTimeout(r, 2_000))]);
      stopped.abort();
      await loop;
      sessionManager.abort();
    },
  };
}
