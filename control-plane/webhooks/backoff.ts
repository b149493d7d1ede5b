/**
 * Wait before the next try after `attempts` failed ones: exponential from
 * baseMs, capped at maxMs, with "equal jitter" (half fixed, half random) so
 * that the receivers of a burst that failed together are not retried together.
 */
export function webhookRetryDelayMs(attempts: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempts - 1));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}
