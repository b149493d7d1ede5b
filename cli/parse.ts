// Parsing of flag values. Every function takes the flag's name so that its error
// says which flag was wrong: `--timeout: "10 minutes" is not a duration (…)`.
import { TaskState } from "../gen/ngpu/v1/task_pb.js";
import { UsageError } from "./errors.js";
import { formatUsd, parseUsd } from "../sdk/money.js";

const DURATION_UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

function fail(flag: string, text: string, what: string): never {
  throw new UsageError(`${flag}: ${JSON.stringify(text)} is not ${what}`);
}

/**
 * A duration such as `500ms`, `60s`, `10m`, `1h30m` or `1.5h`, in whole milliseconds.
 * A bare number is refused: "60" could mean seconds or milliseconds.
 */
export function parseDuration(flag: string, text: string, maxMs = Number.MAX_SAFE_INTEGER): number {
  const trimmed = text.trim();
  const what = "a duration (use e.g. 500ms, 60s, 10m, 1h30m)";
  if (trimmed === "") fail(flag, text, what);
  const part = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/y;
  let ms = 0;
  while (part.lastIndex < trimmed.length) {
    const match = part.exec(trimmed);
    if (!match) fail(flag, text, what);
    ms += Number(match[1]) * (DURATION_UNIT_MS[match[2] ?? ""] ?? Number.NaN);
  }
  if (!Number.isFinite(ms) || ms > Number.MAX_SAFE_INTEGER) fail(flag, text, what);
  if (ms > maxMs) throw new UsageError(`${flag} must be at most ${maxMs} ms (got ${text.trim()})`);
  return Math.round(ms);
}

const BYTE_UNITS: Readonly<Record<string, bigint>> = {
  "": 1n,
  b: 1n,
  k: 1_000n,
  kb: 1_000n,
  m: 1_000_000n,
  mb: 1_000_000n,
  g: 1_000_000_000n,
  gb: 1_000_000_000n,
  t: 1_000_000_000_000n,
  tb: 1_000_000_000_000n,
  ki: 1n << 10n,
  kib: 1n << 10n,
  mi: 1n << 20n,
  mib: 1n << 20n,
  gi: 1n << 30n,
  gib: 1n << 30n,
  ti: 1n << 40n,
  tib: 1n << 40n,
};

/**
 * A size such as `8GiB` (binary, 2^30), `8GB` (decimal, 10^9), `512Mi`, `1.5GiB` or
 * a bare byte count, in bytes. Units are case-insensitive; fractions round down.
 */
export function parseBytes(flag: string, text: string): bigint {
  const match = /^(\d+)(?:\.(\d+))?\s*([a-z]*)$/i.exec(text.trim());
  const unit = match ? BYTE_UNITS[(match[3] ?? "").toLowerCase()] : undefined;
  if (!match || unit === undefined) fail(flag, text, "a size (use e.g. 8GiB, 512MiB, 24GB)");
  const whole = BigInt(match[1] ?? "0") * unit;
  const fraction = match[2] ?? "";
  return whole + (fraction === "" ? 0n : (BigInt(fraction) * unit) / 10n ** BigInt(fraction.length));
}

/** Largest value of a protobuf int32 field; flags that fill one must stay within it. */
export const INT32_MAX = 2_147_483_647;
/** Largest value of a protobuf uint32 field. */
export const UINT32_MAX = 4_294_967_295;
/** Largest value of a protobuf int64 field (nano-USD amounts, milliseconds). */
export const INT64_MAX = 9_223_372_036_854_775_807n;

/**
 * An integer in [min, max]. Give the range of the proto field the flag fills (e.g. `max: INT32_MAX`):
 * a value beyond it would fail later as an encoding error, not as a message naming the flag.
 */
export function parseInteger(flag: string, text: string, range: { min?: number; max?: number } = {}): number {
  const trimmed = text.trim();
  if (!/^[+-]?\d+$/.test(trimmed)) fail(flag, text, "an integer");
  const value = Number(trimmed);
  const min = range.min ?? Number.MIN_SAFE_INTEGER;
  const max = range.max ?? Number.MAX_SAFE_INTEGER;
  if (value < min || value > max) throw new UsageError(`${flag} must be an integer from ${min} to ${max} (got ${trimmed})`);
  return value;
}

/** `key=value` → [key, value]. The value may be empty and may contain "=". */
export function parseKeyValue(flag: string, text: string): [string, string] {
  const eq = text.indexOf("=");
  if (eq <= 0) fail(flag, text, "of the form key=value");
  return [text.slice(0, eq), text.slice(eq + 1)];
}

/** Repeated `key=value` flags as a record; a later key wins. */
export function parseKeyValues(flag: string, texts: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const text of texts) {
    const [key, value] = parseKeyValue(flag, text);
    out[key] = value;
  }
  return out;
}

/**
 * Splits a command line into argv the way a POSIX shell would for plain words:
 * whitespace separates, '…' is literal, "…" allows \" and \\, a backslash outside
 * quotes escapes the next character. No expansion of any kind.
 */
export function splitCommandLine(flag: string, text: string): string[] {
  const argv: string[] = [];
  let word = "";
  let inWord = false;
  let quote: "'" | '"' | undefined;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charAt(i);
    if (quote === "'") {
      if (ch === "'") quote = undefined;
      else word += ch;
    } else if (quote === '"') {
      if (ch === '"') quote = undefined;
      else if (ch === "\\" && (text[i + 1] === '"' || text[i + 1] === "\\")) word += text.charAt(++i);
      else word += ch;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
      inWord = true;
    } else if (ch === "\\" && i + 1 < text.length) {
      word += text.charAt(++i);
      inWord = true;
    } else if (/\s/.test(ch)) {
      if (inWord) argv.push(word);
      word = "";
      inWord = false;
    } else {
      word += ch;
      inWord = true;
    }
  }
  if (quote !== undefined) throw new UsageError(`${flag}: unterminated ${quote} quote in ${JSON.stringify(text)}`);
  if (inWord) argv.push(word);
  if (argv.length === 0) throw new UsageError(`${flag}: the command is empty`);
  return argv;
}

/** Task state names, as users type them (`queued`, `timed_out`), to enum values. */
const TASK_STATES: ReadonlyMap<string, TaskState> = new Map(
  Object.entries(TaskState)
    .filter((entry): entry is [string, TaskState] => typeof entry[1] === "number" && entry[1] !== TaskState.UNSPECIFIED)
    .map(([name, value]) => [name.toLowerCase(), value]),
);

/** `queued,running` → [QUEUED, RUNNING]. Case-insensitive; "-" may stand for "_"; a `task_state_` prefix is allowed. */
export function parseTaskStates(flag: string, text: string): TaskState[] {
  return text
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "")
    .map((name) => {
      const key = name.toLowerCase().replaceAll("-", "_").replace(/^task_state_/, "");
      const state = TASK_STATES.get(key);
      if (state === undefined) {
        throw new UsageError(`${flag}: unknown task state ${JSON.stringify(name)} (one of: ${[...TASK_STATES.keys()].join(", ")})`);
      }
      return state;
    });
}

/** When something expires: a duration from now (`30d`, `12h`) or an ISO 8601 time (`2027-01-31T00:00:00Z`), as a Date. */
export function parseExpiry(flag: string, text: string, now = Date.now()): Date {
  if (/^\d{4}-\d{2}-\d{2}/.test(text.trim())) {
    const at = new Date(text.trim());
    if (Number.isNaN(at.getTime())) fail(flag, text, "a time (use e.g. 2027-01-31T00:00:00Z, or a duration such as 30d)");
    return at;
  }
  return new Date(now + parseDuration(flag, text));
}

/** An amount of USD such as `12.50` (up to 9 decimals), in nano-USD; at most what an int64 of nano-USD holds. */
export function usdFlag(flag: string, text: string, example = "12.50"): bigint {
  const nano = /^\s*\d+(\.\d+)?\s*$/.test(text) && !/\.\d{10,}/.test(text) ? parseUsd(text) ?? INT64_MAX + 1n : undefined;
  if (nano === undefined) fail(flag, text, `an amount of USD (use e.g. ${example}; at most 9 decimals)`);
  if (nano > INT64_MAX) throw new UsageError(`${flag} must be at most ${formatUsd(INT64_MAX)} USD (got ${text.trim()})`);
  return nano;
}
