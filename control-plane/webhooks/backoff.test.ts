import { describe, expect, it } from "vitest";
import { webhookRetryDelayMs } from "./backoff.js";

describe("webhookRetryDelayMs", () => {
  it("doubles per attempt between half and all of the ceiling, up to the cap", () => {
    expect(webhookRetryDelayMs(1, 1000, 60_000, () => 0)).toBe(500);
    expect(webhookRetryDelayMs(1, 1000, 60_000, () => 1)).toBe(1000);
    expect(webhookRetryDelayMs(3, 1000, 60_000, () => 0.5)).toBe(3000);
    expect(webhookRetryDelayMs(30, 1000, 60_000, () => 1)).toBe(60_000);
  });
});
