/**
 * Guards against a misbehaving or malicious provider on its worker stream:
 * message floods (a token bucket per stream) and reported times the control
 * plane could not have observed.
 */

/** Messages per second a worker stream may send, sustained, and in a burst. */
export interface FloodLimit {
  readonly perSecond: number;
  readonly burst: number;
}

export const DEFAULT_FLOOD_LIMIT: FloodLimit = { perSecond: 5_000, burst: 20_000 };

export interface TokenBucket {
  /** Takes one token; false when the stream is over its limit. */
  take(nowMs: number): boolean;
}

export function createTokenBucket(limit: FloodLimit, nowMs: number): TokenBucket {
  let tokens = limit.burst;
  let last = nowMs;
  return {
    take(now) {
      tokens = Math.min(limit.burst, tokens + ((now - last) * limit.perSecond) / 1000);
      last = now;
      if (tokens < 1) return false;
      tokens -= 1;
      return true;
    },
  };
}

/** Worker and control-plane clocks may disagree by this much before a time is refused. */
export const CLOCK_SLACK_MS = 2_000;

/**
 * Checks a finished attempt's reported execution window against what the
 * control plane saw: it cannot start before the attempt existed or end after
 * the report arrived. Returns the window clamped into what was observed, and
 * why the report was refused when it had to be clamped.
 */
export function checkReportedWindow(
  reported: { startedAtMs: number; endedAtMs: number },
  observed: { sinceMs: number; nowMs: number },
): { startedAtMs: number; endedAtMs: number; refused?: string } {
  const earliest = observed.sinceMs - CLOCK_SLACK_MS;
  const latest = observed.nowMs + CLOCK_SLACK_MS;
  const startedAtMs = Math.min(Math.max(reported.startedAtMs, observed.sinceMs), observed.nowMs);
  const endedAtMs = Math.min(Math.max(reported.endedAtMs, startedAtMs), observed.nowMs);
  if (reported.startedAtMs < earliest) {
    return { startedAtMs, endedAtMs, refused: `task_update.finished.started_at_ms: ${reported.startedAtMs} is before the attempt was assigned (${observed.sinceMs}); the observed time is billed` };
  }
  if (reported.endedAtMs > latest) {
    return { startedAtMs, endedAtMs, refused: `task_update.finished.ended_at_ms: ${reported.endedAtMs} is after the report arrived (${observed.nowMs}); the observed time is billed` };
  }
  return { startedAtMs: reported.startedAtMs, endedAtMs: reported.endedAtMs };
}
