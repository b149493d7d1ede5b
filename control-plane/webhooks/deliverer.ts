import { setTimeout as sleep } from "node:timers/promises";
import type { Db } from "../db/database.js";
import { type AttemptResult, type ClaimedDelivery, claimDueDeliveries, recordAttempts } from "../db/webhooks.js";
import type { Logger } from "../log.js";
import { webhookRetryDelayMs } from "./backoff.js";
import { webhookEventBody } from "./event-body.js";
import { postWebhook } from "./post.js";
import { signWebhook, WEBHOOK_ID_HEADER, WEBHOOK_SIGNATURE_HEADER, WEBHOOK_TIMESTAMP_HEADER } from "./signature.js";
import { WebhookTargetError } from "./target-guard.js";

/** Delivery settings; every field has a default. */
export interface WebhookDeliveryOptions {
  /** How often the outbox is checked for due deliveries, in ms. Default 500. */
  readonly pollIntervalMs?: number;
  /**
   * Sends in flight at most. A slow receiver holds only its own sends: the others go on, and
   * each free slot is filled from the outbox. Default 64.
   */
  readonly concurrency?: number;
  /** How long a receiver has to answer, in ms. Default 10000. */
  readonly timeoutMs?: number;
  /** Tries at most before a delivery is FAILED (replay restarts it). Default 12 (about 1 h with the defaults). */
  readonly maxAttempts?: number;
  /** First retry after about this long, doubling each time, in ms. Default 1000. */
  readonly retryBaseMs?: number;
  /** Longest wait between tries, in ms. Default 1 h. */
  readonly retryMaxMs?: number;
  /**
   * May webhooks reach loopback and private addresses? Default false: on a shared network a
   * key holder must not make the control plane probe its own network. A local network allows it.
   */
  readonly allowPrivateTargets?: boolean;
}

export interface WebhookDeliverer {
  /** Checks the outbox now instead of at the next poll. */
  wake(): void;
  /** Stops claiming; sends in flight are aborted and go out again once their lease ends. */
  shutdown(): Promise<void>;
}

/**
 * Sends due webhook deliveries from the Postgres outbox. Runs on every
 * replica; SKIP LOCKED claims share the work among them. Nothing here is on
 * a task's path: tasks only write outbox rows (by trigger) and never wait.
 */
export function startWebhookDeliverer(deps: { db: Db; logger: Logger; options?: WebhookDeliveryOptions | undefined }): WebhookDeliverer {
  const { db } = deps;
  const log = deps.logger.child({ component: "webhooks" });
  const o = deps.options ?? {};
  const pollIntervalMs = o.pollIntervalMs ?? 500;
  const concurrency = o.concurrency ?? 64;
  const timeoutMs = o.timeoutMs ?? 10_000;
  const maxAttempts = o.maxAttempts ?? 12;
  const retryBaseMs = o.retryBaseMs ?? 1_000;
  const retryMaxMs = o.retryMaxMs ?? 3_600_000;
  const allowPrivateTargets = o.allowPrivateTargets ?? false;
  // Long enough that a send still in flight is never claimed twice.
  const leaseMs = timeoutMs + 5_000;

  const stop = new AbortController();
  let nap = new AbortController();

  async function send(delivery: ClaimedDelivery): Promise<AttemptResult> {
    const started = performance.now();
    const body = webhookEventBody(delivery);
    const timestamp = Math.floor(Date.now() / 1000);
    let statusCode = 0;
    let error = "";
    let refusedTarget = false;
    try {
      const response = await postWebhook(
        delivery.url,
        {
          "content-type": "application/json",
          "user-agent": "ngpu-webhooks/1",
          [WEBHOOK_ID_HEADER]: delivery.id,
          [WEBHOOK_TIMESTAMP_HEADER]: String(timestamp),
          [WEBHOOK_SIGNATURE_HEADER]: signWebhook(delivery.secret, timestamp, body),
        },
        body,
        { signal: AbortSignal.any([stop.signal, AbortSignal.timeout(timeoutMs)]), allowPrivate: allowPrivateTargets },
      );
      statusCode = response.status;
      if (statusCode < 200 || statusCode > 299) error = `HTTP ${statusCode}${response.text ? `: ${response.text}` : ""}`;
    } catch (err) {
      const e = err as Error & { cause?: { code?: string; message?: string } };
      refusedTarget = e instanceof WebhookTargetError;
      const timedOut = e.name === "TimeoutError" || (e.name === "AbortError" && (e.cause as { name?: string } | undefined)?.name === "TimeoutError");
      error = timedOut ? `no answer within ${timeoutMs} ms` : `${e.message}${e.cause?.message ? `: ${e.cause.message}` : ""}`;
    }
    const delivered = error === "";
    return {
      deliveryId: delivery.id,
      attempt: delivery.attempt,
      delivered,
      statusCode,
      error,
      durationMs: performance.now() - started,
      // A private target stays private: retrying it would only repeat the refusal.
      retryInMs: delivered || refusedTarget || delivery.attempt >= maxAttempts ? undefined : webhookRetryDelayMs(delivery.attempt, retryBaseMs, retryMaxMs),
    };
  }

  const inFlight = new Set<Promise<void>>();
  let finished: AttemptResult[] = [];

  /** Logs what finished since last time, then fills the free slots; returns how many it claimed. */
  async function round(): Promise<{ claimed: number; free: number }> {
    if (finished.length > 0) {
      const results = finished;
      finished = [];
      await recordAttempts(db, results);
      for (const r of results) {
        if (!r.delivered && r.retryInMs === undefined) log.warn({ delivery: r.deliveryId, attempt: r.attempt, status: r.statusCode, error: r.error }, "webhook delivery failed for good");
        else if (!r.delivered) log.debug({ delivery: r.deliveryId, attempt: r.attempt, status: r.statusCode, error: r.error }, "webhook delivery failed");
      }
    }
    const free = concurrency - inFlight.size;
    if (free <= 0) return { claimed: 0, free };
    const claimed = await claimDueDeliveries(db, free, leaseMs);
    for (const delivery of claimed) {
      const sending: Promise<void> = send(delivery)
        .then((result) => {
          // Abandoned at shutdown: the lease brings it back to whichever replica is up.
          if (stop.signal.aborted) return;
          finished.push(result);
          nap.abort(); // record it, and refill the slot, now
        })
        .finally(() => inFlight.delete(sending));
      inFlight.add(sending);
    }
    return { claimed: claimed.length, free };
  }

  const loop = (async () => {
    while (!stop.signal.aborted) {
      let more = false;
      try {
        const { claimed, free } = await round();
        more = claimed > 0 && claimed === free; // the outbox may hold more that is due
      } catch (err) {
        if (!stop.signal.aborted) log.warn({ err }, "webhook round failed");
      }
      if (more) continue;
      try {
        await sleep(pollIntervalMs, undefined, { signal: AbortSignal.any([stop.signal, nap.signal]) });
      } catch {
        nap = new AbortController();
      }
    }
    await Promise.allSettled([...inFlight]);
  })();

  return {
    wake() {
      nap.abort();
    },
    async shutdown() {
      stop.abort();
      await loop;
    },
  };
}
