// Types and parsers for the Cog HTTP prediction protocol (replicate/cog `docs/http.md`), the one
// contract between the worker and the apps it runs. Parsers are lenient about extra fields (Cog
// versions add them) and strict about the few the worker relies on.

/** Lifecycle of a prediction. */
export type CogPredictionStatus = "starting" | "processing" | "succeeded" | "failed" | "canceled";

const PREDICTION_STATUSES: ReadonlySet<string> = new Set<CogPredictionStatus>(["starting", "processing", "succeeded", "failed", "canceled"]);
const TERMINAL: ReadonlySet<string> = new Set<CogPredictionStatus>(["succeeded", "failed", "canceled"]);

/** True for the statuses a prediction ends in. */
export function isTerminalStatus(status: CogPredictionStatus): status is "succeeded" | "failed" | "canceled" {
  return TERMINAL.has(status);
}

/** The prediction object Cog returns and posts to webhooks (the fields the worker uses). */
export interface CogPrediction {
  readonly id?: string;
  readonly status: CogPredictionStatus;
  readonly input?: Readonly<Record<string, unknown>>;
  /** Any JSON; files come as URLs or `data:` URIs; iterator outputs are arrays that grow. */
  readonly output?: unknown;
  /** Everything the prediction printed so far (cumulative, not a delta). */
  readonly logs?: string | null;
  readonly error?: string | null;
  /** `predict_time` is in seconds; apps may add their own metrics. */
  readonly metrics?: Readonly<{ predict_time?: number } & Record<string, unknown>> | null;
  readonly created_at?: string | null;
  readonly started_at?: string | null;
  readonly completed_at?: string | null;
}

/** Webhook event kinds a client can ask for in `webhook_events_filter`. */
export type CogWebhookEventKind = "start" | "output" | "logs" | "completed";
export const ALL_WEBHOOK_EVENTS: readonly CogWebhookEventKind[] = ["start", "output", "logs", "completed"];

/** `status` of `GET /health-check`. Unknown values from newer Cog versions pass through as strings. */
export type CogHealthStatus = "STARTING" | "READY" | "BUSY" | "SETUP_FAILED" | "DEFUNCT" | "UNHEALTHY";

/** Body of `GET /health-check`. */
export interface CogHealth {
  readonly status: CogHealthStatus | (string & {});
  readonly setup?: {
    readonly started_at?: string | null;
    readonly completed_at?: string | null;
    readonly status?: string | null;
    /** Output captured while setup ran: the first place to look when it failed. */
    readonly logs?: string | null;
  } | null;
}

/** One entry of a 422 body's `detail` (FastAPI/pydantic shape). */
export interface CogValidationIssue {
  readonly loc: readonly (string | number)[];
  readonly msg: string;
  readonly type?: string;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const optString = (v: unknown): boolean => v === undefined || v === null || typeof v === "string";

/** Checks that a value is a prediction object; returns undefined when it is not. */
export function parsePrediction(value: unknown): CogPrediction | undefined {
  if (!isRecord(value)) return undefined;
  if (typeof value.status !== "string" || !PREDICTION_STATUSES.has(value.status)) return undefined;
  if (!optString(value.id) || !optString(value.logs) || !optString(value.error)) return undefined;
  if (value.input !== undefined && value.input !== null && !isRecord(value.input)) return undefined;
  if (value.metrics !== undefined && value.metrics !== null && !isRecord(value.metrics)) return undefined;
  return value as unknown as CogPrediction;
}

/** Checks that a value is a health-check body; returns undefined when it is not. */
export function parseHealth(value: unknown): CogHealth | undefined {
  if (!isRecord(value) || typeof value.status !== "string") return undefined;
  if (value.setup !== undefined && value.setup !== null && !isRecord(value.setup)) return undefined;
  return value as unknown as CogHealth;
}

/** Reads the validation issues out of a 422 body, tolerating non-standard shapes. */
export function parseValidationIssues(body: unknown): CogValidationIssue[] {
  const detail = isRecord(body) ? body.detail : undefined;
  if (!Array.isArray(detail)) return typeof detail === "string" ? [{ loc: [], msg: detail }] : [];
  return detail.filter(isRecord).map((d) => ({
    loc: Array.isArray(d.loc) ? d.loc.filter((p): p is string | number => typeof p === "string" || typeof p === "number") : [],
    msg: typeof d.msg === "string" ? d.msg : JSON.stringify(d),
    ...(typeof d.type === "string" ? { type: d.type } : {}),
  }));
}

/** One line per issue, `strength: ensure this value is less than or equal to 1`, for error messages. */
export function describeValidationIssues(issues: readonly CogValidationIssue[]): string {
  return issues
    .map((i) => {
      // FastAPI prefixes locations with body/input; the field name is what a user recognises.
      const path = i.loc.filter((p, idx) => !(idx === 0 && p === "body") && !(idx === 1 && p === "input" && i.loc[0] === "body"));
      return path.length > 0 ? `${path.join(".")}: ${i.msg}` : i.msg;
    })
    .join("; ");
}

/**
 * The app's input JSON Schema (`components.schemas.Input` of its OpenAPI document) with local
 * `$ref`s inlined, so it can be handed to a JSON Schema validator or shown to users as is.
 * Returns undefined when the document has no Input schema.
 */
export function inputSchemaOf(openapi: unknown): Record<string, unknown> | undefined {
  if (!isRecord(openapi) || !isRecord(openapi.components) || !isRecord(openapi.components.schemas)) return undefined;
  const schemas = openapi.components.schemas;
  const input = schemas.Input;
  if (!isRecord(input)) return undefined;
  const resolve = (node: unknown, depth: number): unknown => {
    // Cog's schemas are shallow; the bound only stops a self-referencing document from looping.
    if (depth > 32) return node;
    if (Array.isArray(node)) return node.map((n) => resolve(n, depth + 1));
    if (!isRecord(node)) return node;
    const ref = node.$ref;
    if (typeof ref === "string" && ref.startsWith("#/components/schemas/")) {
      const target = schemas[ref.slice("#/components/schemas/".length)];
      const { $ref: _ignored, ...rest } = node;
      return isRecord(target) ? { ...(resolve(target, depth + 1) as Record<string, unknown>), ...(resolve(rest, depth + 1) as Record<string, unknown>) } : node;
    }
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(node)) out[k] = resolve(v, depth + 1);
    // Cog wraps enum references in a one-element allOf; flatten it so the property reads plainly.
    const allOf = out.allOf;
    if (Array.isArray(allOf) && allOf.length === 1 && isRecord(allOf[0])) {
      delete out.allOf;
      return { ...allOf[0], ...out };
    }
    return out;
  };
  return resolve(input, 0) as Record<string, unknown>;
}
