import type { Bus } from "../bus/bus.js";
import type { Logger } from "../log.js";

export interface RoundLoop {
  /** Asks for a round soon; wakes during a round make one more, not one each. */
  wake(): void;
  /** Stops waking and waits for the round in progress. */
  shutdown(): Promise<void>;
}

export interface RoundLoopOptions {
  readonly bus: Bus;
  readonly log: Logger;
  /** For the log line of a failed round, e.g. "scheduling round". */
  readonly what: string;
  /** Rounds run at least this often without a signal. */
  readonly intervalMs: number;
  /** Rounds start at most this often (0: as soon as woken). */
  readonly minGapMs?: number;
  /** One round (or a run of them); `stopped()` says the loop is shutting down. */
  readonly round: (stopped: () => boolean) => Promise<void>;
}

/**
 * Runs rounds of a control-plane role one at a time in this process: when
 * woken by `wake()`, by a scheduler wake-up on the bus (a task arrived or
 * ended), or every `intervalMs`. A failed round is logged and the next one
 * waits 200 ms, so a database outage does not spin.
 */
export function startRoundLoop(options: RoundLoopOptions): RoundLoop {
  const minGapMs = options.minGapMs ?? 0;
  let pending = false;
  let running: Promise<void> | undefined;
  let stopped = false;
  let lastRoundAt = 0;
  const isStopped = () => stopped;

  const loop = async () => {
    while (pending && !stopped) {
      pending = false;
      const wait = lastRoundAt + minGapMs - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      if (stopped) break;
      lastRoundAt = Date.now();
      try {
        await options.round(isStopped);
      } catch (err) {
        options.log.warn({ err }, `${options.what} failed`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    running = undefined;
  };
  const wake = () => {
    pending = true;
    if (!running && !stopped) running = loop();
  };
  const unsubscribe = options.bus.onSchedulerWake(wake);
  const tick = setInterval(wake, options.intervalMs);
  tick.unref();
  wake();

  return {
    wake,
    async shutdown() {
      stopped = true;
      clearInterval(tick);
      unsubscribe();
      await running;
    },
  };
}
