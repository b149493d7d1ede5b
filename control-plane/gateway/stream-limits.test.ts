import { describe, expect, it } from "vitest";
import { CLOCK_SLACK_MS, checkReportedWindow, createTokenBucket } from "./stream-limits.js";

describe("token bucket", () => {
  it("allows a burst, then the sustained rate", () => {
    const bucket = createTokenBucket({ perSecond: 10, burst: 5 }, 0);
    const taken = Array.from({ length: 7 }, () => bucket.take(0));
    expect(taken).toEqual([true, true, true, true, true, false, false]);
    expect(bucket.take(100)).toBe(true); // 100 ms at 10/s: one token back
    expect(bucket.take(100)).toBe(false);
    expect(Array.from({ length: 6 }, () => bucket.take(10_000)).filter(Boolean)).toHaveLength(5); // never more than the burst
  });
});

describe("reported execution window", () => {
  const observed = { sinceMs: 100_000, nowMs: 200_000 };
  it("accepts times inside what was observed (with clock slack)", () => {
    expect(checkReportedWindow({ startedAtMs: 100_000 - CLOCK_SLACK_MS, endedAtMs: 200_000 + CLOCK_SLACK_MS }, observed)).toEqual({ startedAtMs: 98_000, endedAtMs: 202_000 });
  });
  it("refuses a start before the attempt existed and clamps it", () => {
    const r = checkReportedWindow({ startedAtMs: 1_000, endedAtMs: 150_000 }, observed);
    expect(r).toMatchObject({ startedAtMs: 100_000, endedAtMs: 150_000 });
    expect(r.refused).toMatch(/^task_update\.finished\.started_at_ms: 1000 is before the attempt was assigned/);
  });
  it("refuses an end after the report arrived and clamps it", () => {
    const r = checkReportedWindow({ startedAtMs: 150_000, endedAtMs: 9_000_000 }, observed);
    expect(r).toMatchObject({ startedAtMs: 150_000, endedAtMs: 200_000 });
    expect(r.refused).toMatch(/^task_update\.finished\.ended_at_ms/);
  });
});
