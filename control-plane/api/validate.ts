import type { JsonObject } from "@bufbuild/protobuf";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { invalidArgument } from "../errors.js";

/** Largest task input, as JSON text. Bigger inputs belong in object storage, passed by URL. */
export const MAX_INPUT_BYTES = 1024 * 1024;
/** Deepest nesting accepted in task inputs and schemas. */
export const MAX_JSON_DEPTH = 32;
/** Longest execution timeout (24 h); 0 in a request means the default. */
export const MAX_TIMEOUT_MS = 24 * 3600 * 1000;
export const DEFAULT_TIMEOUT_MS = 10 * 60 * 1000;
export const MAX_PAGE_SIZE = 500;
export const DEFAULT_MAX_ATTEMPTS = 3;
export const MAX_ATTEMPTS = 10;
/** Longest queue time-to-live (7 days). */
export const MAX_QUEUE_TTL_MS = 7 * 24 * 3600 * 1000;

/** 0 means "use the default"; otherwise 1 to MAX_ATTEMPTS. */
export function checkMaxAttempts(field: string, value: number): number {
  if (value > MAX_ATTEMPTS) throw invalidArgument(field, `must be at most ${MAX_ATTEMPTS}`);
  return value;
}

/** 0 means no limit (or the default); otherwise 1 s to 7 days. */
export function checkQueueTtlMs(field: string, value: bigint): number {
  if (value === 0n) return 0;
  if (value < 1000n || value > BigInt(MAX_QUEUE_TTL_MS)) throw invalidArgument(field, `must be 0 or between 1000 and ${MAX_QUEUE_TTL_MS} ms`);
  return Number(value);
}

const LABEL_KEY = /^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,62}$/;

/**
 * Text that Postgres can store: no NUL character (text and jsonb refuse it) and
 * well-formed UTF-16 (a lone surrogate has no UTF-8 form).
 */
export function checkText(field: string, value: string): string {
  if (value.includes("\u0000")) throw invalidArgument(field, "must not contain a NUL character (\\u0000)");
  if (!value.isWellFormed()) throw invalidArgument(field, "is not well-formed Unicode (a lone surrogate)");
  return value;
}

export function requireString(field: string, value: string, maxLength = 256): string {
  if (value.length === 0) throw invalidArgument(field, "is required");
  if (value.length > maxLength) throw invalidArgument(field, `must be at most ${maxLength} characters`);
  return checkText(field, value);
}

/** Size and depth limits on a JSON object from a request. */
export function checkJson(field: string, value: JsonObject | undefined, maxBytes = MAX_INPUT_BYTES): Record<string, unknown> {
  const object = value ?? {};
  const depth = jsonDepth(field, object);
  if (depth > MAX_JSON_DEPTH) throw invalidArgument(field, `is nested ${depth} levels deep; the limit is ${MAX_JSON_DEPTH}`);
  const bytes = Buffer.byteLength(JSON.stringify(object));
  if (bytes > maxBytes) throw invalidArgument(field, `is ${bytes} bytes as JSON; the limit is ${maxBytes} bytes`);
  return object;
}

/** Nesting depth of a JSON value; also checks every key and string is storable text. */
function jsonDepth(field: string, value: unknown): number {
  // Iterative, so a hostile document cannot overflow the stack.
  let max = 0;
  const stack: Array<[unknown, number, string]> = [[value, 1, field]];
  while (stack.length > 0) {
    const [v, d, path] = stack.pop()!;
    if (typeof v === "string") checkText(path, v);
    if (v === null || typeof v !== "object") continue;
    if (d > max) max = d;
    if (max > MAX_JSON_DEPTH) return max;
    for (const [key, child] of Object.entries(v as object)) {
      const childPath = Array.isArray(v) ? `${path}[${key}]` : `${path}.${key}`;
      if (!Array.isArray(v)) checkText(`${path} key ${JSON.stringify(key)}`, key);
      stack.push([child, d + 1, childPath]);
    }
  }
  return max;
}

export function checkLabels(field: string, labels: Record<string, string>): Record<string, string> {
  const entries = Object.entries(labels);
  if (entries.length > 32) throw invalidArgument(field, "at most 32 labels");
  for (const [k, v] of entries) {
    checkText(`${field}[${JSON.stringify(k)}]`, v);
    if (!LABEL_KEY.test(k)) throw invalidArgument(`${field}[${JSON.stringify(k)}]`, "keys are 1-63 letters, digits, '_', '.', '-', '/' starting with a letter or digit");
    if (v.length > 256) throw invalidArgument(`${field}[${JSON.stringify(k)}]`, "values are at most 256 characters");
  }
  return labels;
}

/** 0 means "use the default"; otherwise 1 s to 24 h. */
export function checkTimeoutMs(field: string, value: bigint): number {
  if (value === 0n) return 0;
  if (value < 1000n || value > BigInt(MAX_TIMEOUT_MS)) throw invalidArgument(field, `must be 0 (default) or between 1000 and ${MAX_TIMEOUT_MS} ms`);
  return Number(value);
}

export function checkPageSize(field: string, value: number, fallback: number): number {
  if (value === 0) return fallback;
  if (value > MAX_PAGE_SIZE) throw invalidArgument(field, `must be at most ${MAX_PAGE_SIZE}`);
  return value;
}

/** Page tokens are opaque to callers: base64url JSON of where the next page starts. */
export function encodePageToken(position: Record<string, string | number>): string {
  return Buffer.from(JSON.stringify(position)).toString("base64url");
}

export function decodePageToken<K extends string>(field: string, token: string, key: K, type: "string" | "number"): Record<K, string | number> | undefined {
  if (token === "") return undefined;
  try {
    const parsed = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as Record<string, unknown>;
    const v = parsed[key];
    const valid = type === "number" ? Number.isSafeInteger(v) : typeof v === "string" && !v.includes("\u0000") && v.isWellFormed();
    if (valid) return parsed as Record<K, string | number>;
  } catch {
    // fall through to the error below
  }
  throw invalidArgument(field, "is not a page token this API issued");
}

/** An http:// or https:// URL that a control plane can POST to (webhooks), at most 2048 characters. */
export function checkHttpUrl(field: string, value: string): string {
  requireString(field, value, 2048);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw invalidArgument(field, "is not a URL");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw invalidArgument(field, "must be an http:// or https:// URL");
  if (url.username || url.password) throw invalidArgument(field, "must not carry a user name or password");
  return url.toString();
}

const EARLIEST_MS = Date.UTC(2000, 0, 1);
const LATEST_MS = Date.UTC(2200, 0, 1);

/**
 * A timestamp from a request as a Date. Protobuf allows seconds far outside what
 * a Date or Postgres holds (they would become an Invalid Date and fail deep in a
 * query), so anything outside 2000-01-01 … 2200-01-01, or with nanos out of range,
 * is refused here, naming the field.
 */
export function checkTimestamp(field: string, value: Timestamp): Date {
  if (value.nanos < 0 || value.nanos > 999_999_999) throw invalidArgument(field, "nanos must be 0..999999999");
  const ms = Number(value.seconds) * 1000 + Math.floor(value.nanos / 1e6);
  if (!Number.isFinite(ms) || ms < EARLIEST_MS || ms >= LATEST_MS) throw invalidArgument(field, "must be between 2000-01-01 and 2200-01-01");
  return new Date(ms);
}
