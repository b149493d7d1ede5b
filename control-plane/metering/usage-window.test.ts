import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { checkRange, checkTimeZone, localTime } from "./usage-window.js";

const ts = (iso: string) => timestampFromDate(new Date(iso));
const fields = { start: "start_time", end: "end_time" };

describe("usage window checks", () => {
  it("accepts IANA zones and refuses anything else, naming the field", () => {
    expect(checkTimeZone("time_zone", "")).toBe("UTC");
    expect(checkTimeZone("time_zone", "Asia/Kathmandu")).toBe("Asia/Kathmandu");
    for (const bad of ["Mars/Base", "+05:30", "America/New_York; DROP TABLE x", "../etc/passwd"]) {
      expect(() => checkTimeZone("time_zone", bad)).toThrow(/^time_zone: /);
    }
  });

  it("refuses missing, inverted, empty and too large ranges", () => {
    expect(() => checkRange(fields, undefined, ts("2026-01-02T00:00:00Z"), 31)).toThrow(/^start_time: is required/);
    expect(() => checkRange(fields, ts("2026-01-02T00:00:00Z"), ts("2026-01-01T00:00:00Z"), 31)).toThrow(/^end_time: must be after/);
    expect(() => checkRange(fields, ts("2026-01-01T00:00:00Z"), ts("2026-01-01T00:00:00Z"), 31)).toThrow(/^end_time: /);
    expect(() => checkRange(fields, ts("2026-01-01T00:00:00Z"), ts("2026-02-02T00:00:01Z"), 31)).toThrow(/^end_time: the range is too large/);
    expect(() => checkRange(fields, ts("1960-01-01T00:00:00Z"), ts("1960-01-02T00:00:00Z"), 31)).toThrow(/^start_time: /);
    expect(checkRange(fields, ts("2026-01-01T00:00:00Z"), ts("2026-02-01T00:00:00Z"), 31).end.toISOString()).toBe("2026-02-01T00:00:00.000Z");
  });

  it("writes local times with their offset", () => {
    expect(localTime(new Date("2026-03-08T07:00:00Z"), -240)).toBe("2026-03-08T03:00:00-04:00");
    expect(localTime(new Date("2026-03-08T00:15:00Z"), 345)).toBe("2026-03-08T06:00:00+05:45");
  });
});
