/**
 * Collects single writes into one statement: items added within the same
 * moment (up to maxItems, waiting at most maxDelayMs) are flushed together and
 * each caller gets its own result. One round trip and one commit then serve
 * many workers' updates, which is what bounds task throughput.
 */
export interface Batcher<T, R> {
  add(item: T): Promise<R>;
}

export interface BatcherOptions {
  /** Largest batch; a full batch flushes at once. Default 500. */
  readonly maxItems?: number;
  /** Longest an item waits for others before its batch flushes, in ms. Default 2. */
  readonly maxDelayMs?: number;
  /**
   * Flushes allowed in flight at once; items arriving meanwhile wait and go in
   * the next batch. Default unlimited. 1 for writes that touch shared rows (usage
   * rollups): concurrent small transactions would queue on those rows' locks
   * until each commits, where one bigger batch takes the locks once.
   */
  readonly maxInFlight?: number;
}

export function createBatcher<T, R>(flush: (items: T[]) => Promise<R[]>, options: BatcherOptions = {}): Batcher<T, R> {
  const maxItems = options.maxItems ?? 500;
  const maxDelayMs = options.maxDelayMs ?? 2;
  const maxInFlight = options.maxInFlight ?? Number.POSITIVE_INFINITY;
  let pending: Array<{ item: T; resolve: (r: R) => void; reject: (e: unknown) => void }> = [];
  let timer: NodeJS.Timeout | undefined;
  let inFlight = 0;

  const run = () => {
    clearTimeout(timer);
    timer = undefined;
    if (pending.length === 0 || inFlight >= maxInFlight) return;
    const batch = pending.splice(0, maxItems);
    inFlight++;
    flush(batch.map((b) => b.item))
      .then(
        (results) => batch.forEach((b, i) => b.resolve(results[i]!)),
        (err: unknown) => batch.forEach((b) => b.reject(err)),
      )
      .finally(() => {
        inFlight--;
        // What arrived during the flush goes now, as one batch.
        if (pending.length > 0) run();
      });
  };

  return {
    add(item) {
      return new Promise<R>((resolve, reject) => {
        pending.push({ item, resolve, reject });
        if (pending.length >= maxItems) run();
        else timer ??= setTimeout(run, maxDelayMs);
      });
    },
  };
}
