import { describe, expect, it } from "vitest";
import { formatUsd, parseUsd } from "../../sdk/money.js";
import { estimateCost, gpuTimeCostNanoUsd } from "./estimate.js";

describe("cost estimate", () => {
  it("gives the brief's figures: 3,000 × 10 s on an RTX 3090 = 10.98 USD; break-even against 272.88 USD at 74,557 tasks", () => {
    const e = estimateCost({
      priceNanoUsdPerGpuSecond: 366_000n,
      gpuCount: 1n,
      executionMsPerTask: 10_000n,
      tasksPerMonth: 3_000n,
      reservedMonthlyNanoUsd: parseUsd("272.88")!,
    });
    expect(e.costPerTaskNanoUsd).toBe(3_660_000n);
    expect(formatUsd(e.payPerUseMonthlyNanoUsd)).toBe("10.98");
    // 272.88 / 0.00366 = 74557.37: pay-per-use costs less up to 74,557 tasks, not at 74,558.
    expect(e.breakEvenTasksPerMonth).toBe(74_557n);
    expect(74_557n * e.costPerTaskNanoUsd <= e.reservedMonthlyNanoUsd).toBe(true);
    expect(74_558n * e.costPerTaskNanoUsd > e.reservedMonthlyNanoUsd).toBe(true);
    expect(formatUsd(e.savingsNanoUsd)).toBe("261.90");
  });

  it("rounds GPU-time cost to the nearest nano-USD, half up, with no floating point", () => {
    expect(gpuTimeCostNanoUsd(1n, 366_000n)).toBe(366n);
    expect(gpuTimeCostNanoUsd(1n, 1_500n)).toBe(2n); // 1.5 → 2
    expect(gpuTimeCostNanoUsd(1n, 1_499n)).toBe(1n);
    expect(gpuTimeCostNanoUsd(86_400_000n * 16n, 1_000_000_000_000n)).toBe(1_382_400_000_000_000_000n);
  });

  it("reports no break-even when there is nothing to compare", () => {
    const free = estimateCost({ priceNanoUsdPerGpuSecond: 0n, gpuCount: 1n, executionMsPerTask: 1n, tasksPerMonth: 1n, reservedMonthlyNanoUsd: 5n });
    expect(free.breakEvenTasksPerMonth).toBe(0n);
  });
});

describe("USD text", () => {
  it("parses decimal USD exactly and formats nano-USD back", () => {
    expect(parseUsd("0.000366")).toBe(366_000n);
    expect(parseUsd("272.88")).toBe(272_880_000_000n);
    expect(parseUsd("1e3")).toBeUndefined();
    expect(parseUsd("0.0000000001")).toBeUndefined();
    expect(formatUsd(10_980_000_000n)).toBe("10.98");
    expect(formatUsd(366_000n)).toBe("0.000366");
    expect(formatUsd(-5n)).toBe("-0.000000005");
    expect(formatUsd(0n)).toBe("0.00");
  });
});
