import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { checkTimestamp } from "../api/validate.js";
import { invalidArgument } from "../errors.js";

/** How summaries cut time: local hours, days or months of a time zone. */
export type Granularity = "hour" | "day" | "month";

const DAY_MS = 86_400_000;

/**
 * Longest range one summary may cover, per granularity (in days): a month of
 * hours, two years of days, ten years of months. Bounds the work and the answer.
 */
export const MAX_RANGE_DAYS: Readonly<Record<Granularity, number>> = { hour: 31, day: 731, month: 3660 };

/** Longest range of usage records one list or export may cover. */
export const MAX_RECORD_RANGE_DAYS = 366;

const ZONE_NAME = /^[A-Za-z][A-Za-z0-9_+\-]*(?:\/[A-Za-z0-9_+\-]+)*$/;

/**
 * An IANA time zone name (empty: UTC). Checked here against the runtime's zone
 * database; Postgres checks again when it uses it (see isUnknownZoneError).
 */
export function checkTimeZone(field: string, zone: string): string {
  if (zone === "") return "UTC";
  if (zone.length > 64 || !ZONE_NAME.test(zone)) throw invalidArgument(field, `${JSON.stringify(zone.slice(0, 64))} is not an IANA time zone name such as "America/New_York"`);
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: zone });
  } catch {
    throw invalidArgument(field, `unknown time zone ${JSON.stringify(zone)}; use an IANA name such as "America/New_York"`);
  }
  return zone;
}

/** Postgres refusing a zone it does not know (SQLSTATE 22023, "time zone ... not recognized"). */
export function isUnknownZoneError(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown };
  return e?.code === "22023" && typeof e.message === "string" && e.message.includes("time zone");
}

/** A required [start, end) range, not inverted, within maxDays. */
export function checkRange(
  fields: { start: string; end: string },
  start: Timestamp | undefined,
  end: Timestamp | undefined,
  maxDays: number,
): { start: Date; end: Date } {
  if (!start) throw invalidArgument(fields.start, "is required");
  if (!end) throw invalidArgument(fields.end, "is required");
  const from = checkTimestamp(fields.start, start);
  const to = checkTimestamp(fields.end, end);
  if (to.getTime() <= from.getTime()) throw invalidArgument(fields.end, `must be after ${fields.start} (the range is inverted or empty)`);
  if (to.getTime() - from.getTime() > maxDays * DAY_MS) throw invalidArgument(fields.end, `the range is too large: at most ${maxDays} days here`);
  return { start: from, end: to };
}


/** "2026-03-08T03:00:00-04:00": an instant as wall time at a UTC offset. */
export function localTime(instant: Date, offsetMinutes: number): string {
  const wall = new Date(instant.getTime() + offsetMinutes * 60_000).toISOString().slice(0, 19);
  const sign = offsetMinutes < 0 ? "-" : "+";
  const abs = Math.abs(offsetMinutes);
  return `${wall}${sign}${String(Math.floor(abs / 60)).padStart(2, "0")}:${String(abs % 60).padStart(2, "0")}`;
}
