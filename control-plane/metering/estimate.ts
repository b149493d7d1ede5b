/**
 * Pay-per-use against a reserved server, in exact integer nano-USD. The cost of
 * a task follows the same rule as a usage record: gpu_ms × price / 1000, rounded
 * to the nearest nano-USD (half up).
 */
export interface CostEstimate {
  readonly costPerTaskNanoUsd: bigint;
  readonly payPerUseMonthlyNanoUsd: bigint;
  readonly reservedMonthlyNanoUsd: bigint;
  /** The most tasks a month for which pay-per-use costs no more than the reserved server (0 without one). */
  readonly breakEvenTasksPerMonth: bigint;
  /** reserved − pay-per-use; negative when the reserved server is cheaper. */
  readonly savingsNanoUsd: bigint;
}

/** nano-USD for gpuMs of GPU time at a price per GPU-second: round(gpuMs × price / 1000), half up. */
export function gpuTimeCostNanoUsd(gpuMs: bigint, priceNanoUsdPerGpuSecond: bigint): bigint {
  return (2n * gpuMs * priceNanoUsdPerGpuSecond + 1000n) / 2000n;
}

export function estimateCost(input: {
  readonly priceNanoUsdPerGpuSecond: bigint;
  readonly gpuCount: bigint;
  readonly executionMsPerTask: bigint;
  readonly tasksPerMonth: bigint;
  readonly reservedMonthlyNanoUsd: bigint;
}): CostEstimate {
  const perTask = gpuTimeCostNanoUsd(input.executionMsPerTask * input.gpuCount, input.priceNanoUsdPerGpuSecond);
  const monthly = perTask * input.tasksPerMonth;
  const reserved = input.reservedMonthlyNanoUsd;
  return {
    costPerTaskNanoUsd: perTask,
    payPerUseMonthlyNanoUsd: monthly,
    reservedMonthlyNanoUsd: reserved,
    // A free task never reaches any price: report 0 rather than infinity.
    breakEvenTasksPerMonth: reserved > 0n && perTask > 0n ? reserved / perTask : 0n,
    savingsNanoUsd: reserved > 0n ? reserved - monthly : 0n,
  };
}
