// A small client for one Cog app instance. It only speaks HTTP: starting/stopping the instance
// and receiving its webhooks live elsewhere.
import { CogError } from "./errors.js";
import {
  ALL_WEBHOOK_EVENTS,
  describeValidationIssues,
  parseHealth,
  parsePrediction,
  parseValidationIssues,
  type CogHealth,
  type CogPrediction,
} from "./cog-protocol.js";

/** Default per-request timeout, ms. Predictions run async, so no request should take long. */
export const DEFAULT_COG_REQUEST_TIMEOUT_MS = 10_000;

export interface CogClientOptions {
  /** Base URL of the instance, e.g. `http://127.0.0.1:5000` (no trailing slash needed). */
  readonly baseUrl: string;
  /** Per-request timeout in ms (default {@link DEFAULT_COG_REQUEST_TIMEOUT_MS}). */
  readonly requestTimeoutMs?: number;
}

export interface CogClient {
  readonly baseUrl: string;
  /** `GET /health-check`. Throws {@link CogError} `unreachable`/`timeout` while nothing answers. */
  healthCheck(signal?: AbortSignal): Promise<CogHealth>;
  /** `GET /openapi.json`: the app's schema document (see `inputSchemaOf`). */
  openapi(signal?: AbortSignal): Promise<Record<string, unknown>>;
  /**
   * Starts a prediction asynchronously and idempotently: `PUT /predictions/{id}` with
   * `Prefer: respond-async`, asking for every webhook event at `webhookUrl`. Resolves with the
   * prediction object of the 202 answer (a retry with the same id while it runs starts nothing new).
   * Throws {@link CogError}: `busy` (409), `invalid_input` (422, `detail` = issues), `not_ready` (503), …
   * @param signal aborts the HTTP request only; to stop the prediction use {@link CogClient.cancel}.
   */
  predict(id: string, input: Readonly<Record<string, unknown>>, webhookUrl: string, signal?: AbortSignal): Promise<CogPrediction>;
  /**
   * `POST /predictions/{id}/cancel`. Resolves true when the app knew the prediction (it will end
   * `canceled` and send its completed webhook), false on 404 (not running: never started or already done).
   */
  cancel(id: string, signal?: AbortSignal): Promise<boolean>;
}

/** Creates a client for one instance; cheap, holds no connections of its own (undici pools them). */
export function createCogClient(options: CogClientOptions): CogClient {
  const baseUrl = options.baseUrl.replace(/\/+$/, "");
  const timeoutMs = options.requestTimeoutMs ?? DEFAULT_COG_REQUEST_TIMEOUT_MS;

  async function request(method: string, path: string, init: { body?: unknown; headers?: Record<string, string>; signal?: AbortSignal | undefined }) {
    const timeout = AbortSignal.timeout(Math.max(1, Math.ceil(timeoutMs)));
    const signal = init.signal ? AbortSignal.any([init.signal, timeout]) : timeout;
    const headers: Record<string, string> = { accept: "application/json", ...init.headers };
    if (init.body !== undefined) headers["content-type"] = "application/json";
    let response: Response;
    let text: string;
    try {
      response = await fetch(`${baseUrl}${path}`, {
        method,
        headers,
        signal,
        ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
      });
      text = await response.text();
    } catch (err) {
      // The caller's abort is theirs to handle: pass its reason through untouched.
      if (init.signal?.aborted) throw init.signal.reason;
      if (timeout.aborted) throw new CogError("timeout", `${method} ${baseUrl}${path}: no answer within ${timeoutMs} ms`, { cause: err });
      throw new CogError("unreachable", `${method} ${baseUrl}${path}: ${describeFetchError(err)}`, { cause: err });
    }
    let body: unknown = undefined;
    if (text !== "") {
      try {
        body = JSON.parse(text);
      } catch (err) {
        throw new CogError("protocol", `${method} ${path}: HTTP ${response.status} with a body that is not JSON`, { cause: err, status: response.status });
      }
    }
    return { status: response.status, body };
  }

  const detailOf = (body: unknown): unknown => (typeof body === "object" && body !== null && "detail" in body ? (body as { detail: unknown }).detail : body);

  return {
    baseUrl,

    async healthCheck(signal) {
      const { status, body } = await request("GET", "/health-check", { signal });
      const health = status === 200 ? parseHealth(body) : undefined;
      if (!health) throw new CogError("protocol", `GET /health-check: unexpected answer (HTTP ${status})`, { status, detail: body });
      return health;
    },

    async openapi(signal) {
      const { status, body } = await request("GET", "/openapi.json", { signal });
      if (status !== 200 || typeof body !== "object" || body === null || Array.isArray(body)) {
        throw new CogError("protocol", `GET /openapi.json: unexpected answer (HTTP ${status})`, { status });
      }
      return body as Record<string, unknown>;
    },

    async predict(id, input, webhookUrl, signal) {
      const path = `/predictions/${encodeURIComponent(id)}`;
      const { status, body } = await request("PUT", path, {
        signal,
        headers: { prefer: "respond-async" },
        body: { id, input, webhook: webhookUrl, webhook_events_filter: ALL_WEBHOOK_EVENTS },
      });
      if (status === 202 || status === 200) {
        const prediction = parsePrediction(body);
        if (!prediction) throw new CogError("protocol", `PUT ${path}: HTTP ${status} without a prediction object`, { status, detail: body });
        return prediction;
      }
      if (status === 409) throw new CogError("busy", `PUT ${path}: instance is busy with another prediction`, { status, detail: detailOf(body) });
      if (status === 422) {
        const issues = parseValidationIssues(body);
        throw new CogError("invalid_input", `invalid input: ${describeValidationIssues(issues) || JSON.stringify(body)}`, { status, detail: issues });
      }
      if (status === 503) throw new CogError("not_ready", `PUT ${path}: instance not ready (${JSON.stringify(detailOf(body))})`, { status, detail: detailOf(body) });
      throw new CogError("protocol", `PUT ${path}: unexpected HTTP ${status}`, { status, detail: detailOf(body) });
    },

    async cancel(id, signal) {
      const path = `/predictions/${encodeURIComponent(id)}/cancel`;
      const { status, body } = await request("POST", path, { signal });
      if (status === 200) return true;
      if (status === 404) return false;
      throw new CogError("protocol", `POST ${path}: unexpected HTTP ${status}`, { status, detail: detailOf(body) });
    },
  };
}

/** undici hides the useful part (ECONNREFUSED, ECONNRESET) in `cause`. */
function describeFetchError(err: unknown): string {
  const cause = (err as { cause?: { code?: unknown; message?: unknown } } | undefined)?.cause;
  if (cause && typeof cause.code === "string") return `${cause.code}${typeof cause.message === "string" ? ` (${cause.message})` : ""}`;
  return err instanceof Error ? err.message : String(err);
}
