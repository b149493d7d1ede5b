import { createHmac } from "node:crypto";

/** Headers of every webhook POST. */
export const WEBHOOK_ID_HEADER = "ngpu-webhook-id";
export const WEBHOOK_TIMESTAMP_HEADER = "ngpu-webhook-timestamp";
export const WEBHOOK_SIGNATURE_HEADER = "ngpu-webhook-signature";

/**
 * The signature header's value: `v1=` and the hex HMAC-SHA256, keyed with the
 * webhook's secret, of `<timestamp>.<body>` (timestamp in Unix seconds, the
 * body byte for byte). Signing the timestamp lets receivers refuse replays of
 * an old captured request.
 */
export function signWebhook(secret: string, timestampSeconds: number, body: string): string {
  return `v1=${createHmac("sha256", secret).update(`${timestampSeconds}.${body}`).digest("hex")}`;
}
