/**
 * Collects single writes into one statement: items added within the same
 * moment (up to maxItems, waiting at most maxDelayMs) are flushed together and
 * each caller gets its own result. One round trip and one commit then serve
 * many workers' updates, which is what bounds task throughput.
 */
export interface Batcher<T, R> {
  add(item: T): Promise<R>;
}

export function createBatcher<T, R>(flush: (items: T[]) => Promise<R[]>, options: { maxItems?: number; maxDelayMs?: number } = {}): Batcher<T, R> {
  const maxItems = options.maxItems ?? 500;
  const maxDelayMs = options.maxDelayMs ?? 2;
  let pending: Array<{ item: T; resolve: (r: R) => void; reject: (e: unknown) => void }> = [];
  let timer: NodeJS.Timeout | undefined;

  const run = () => {
    clearTimeout(timer);
    timer = undefined;
    const batch = pending;
    pending = [];
    if (batch.length === 0) return;
    flush(batch.map((b) => b.item)).then(
      (results) => batch.forEach((b, i) => b.resolve(results[i]!)),
      (err: unknown) => batch.forEach((b) => b.reject(err)),
    );
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
