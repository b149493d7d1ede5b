// Sends a prediction's webhooks the way Cog does: the whole prediction object as the body, `start`
// and `completed` at once, `output` and `logs` at most once per interval (coalesced, so the
// receiver sees the latest state), in order, with retries only for the terminal event.

/** Webhook event kinds of the Cog protocol. */
export type WebhookEventKind = "start" | "output" | "logs" | "completed";
export const WEBHOOK_EVENT_KINDS: readonly WebhookEventKind[] = ["start", "output", "logs", "completed"];

export interface WebhookSenderOptions {
  readonly url: string;
  /** Events the client asked for (`webhook_events_filter`); Cog's default is all four. */
  readonly events: ReadonlySet<WebhookEventKind>;
  /** Least time between two `output`/`logs` sends, in ms (Cog: 500). */
  readonly minIntervalMs: number;
  /** Current prediction object, serialised at the moment a send is queued. */
  readonly snapshot: () => unknown;
  /** Called when a webhook could not be delivered (after retries for `completed`). */
  readonly onError: (err: unknown) => void;
}

export interface WebhookSender {
  notify(event: WebhookEventKind): void;
  /** Resolves when every queued send has finished (delivered or given up). */
  flush(): Promise<void>;
}

/** Delays before re-sending a failed `completed` webhook, in ms. */
const COMPLETED_RETRY_DELAYS_MS = [100, 400, 1600];
const SEND_TIMEOUT_MS = 10_000;

export function createWebhookSender(options: WebhookSenderOptions): WebhookSender {
  let chain: Promise<void> = Promise.resolve();
  let lastQueuedAt = Number.NEGATIVE_INFINITY;
  let trailing: NodeJS.Timeout | undefined;
  let done = false;

  const post = async (body: string, retries: readonly number[]): Promise<void> => {
    for (let attempt = 0; ; attempt++) {
      try {
        const response = await fetch(options.url, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body,
          signal: AbortSignal.timeout(SEND_TIMEOUT_MS),
        });
        await response.arrayBuffer();
        // Only server-side trouble is worth a retry; a 4xx will not change.
        if (response.status < 500 && response.status !== 429) return;
        throw new Error(`webhook answered HTTP ${response.status}`);
      } catch (err) {
        const delay = retries[attempt];
        if (delay === undefined) throw err;
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  };

  const queue = (terminal: boolean) => {
    const body = JSON.stringify(options.snapshot());
    lastQueuedAt = performance.now();
    chain = chain.then(() => post(body, terminal ? COMPLETED_RETRY_DELAYS_MS : [])).catch(options.onError);
  };

  return {
    notify(event) {
      if (done) return;
      if (event === "completed") {
        done = true;
        // The terminal payload carries every log line and the output, so a pending coalesced send is moot.
        clearTimeout(trailing);
        trailing = undefined;
      }
      if (!options.events.has(event)) return;
      if (event === "start" || event === "completed") {
        queue(event === "completed");
        return;
      }
      if (trailing) return;
      const wait = lastQueuedAt + options.minIntervalMs - performance.now();
      if (wait <= 0) {
        queue(false);
      } else {
        trailing = setTimeout(() => {
          trailing = undefined;
          queue(false);
        }, wait);
      }
    },
    flush: () => chain,
  };
}
