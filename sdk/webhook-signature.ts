import { createHmac, timingSafeEqual } from "node:crypto";
import { fromJsonString } from "@bufbuild/protobuf";
import { type WebhookEvent, WebhookEventSchema } from "../gen/ngpu/v1/webhook_event_pb.js";

/** Default largest age of a webhook's timestamp accepted by {@link verifyWebhook}, in seconds. */
export const DEFAULT_WEBHOOK_TOLERANCE_SECONDS = 300;

export class WebhookSignatureError extends Error {
  override readonly name = "WebhookSignatureError";
}

/** What {@link verifyWebhook} checks. */
export interface VerifyWebhookInit {
  /** The webhook's secret ("whsec_…"). */
  readonly secret: string;
  /** The request body exactly as received (before any JSON parsing). */
  readonly body: string | Uint8Array;
  /** Value of the `ngpu-webhook-timestamp` header. */
  readonly timestamp: string | null | undefined;
  /** Value of the `ngpu-webhook-signature` header. */
  readonly signature: string | null | undefined;
  /** Largest accepted age (either way) of the timestamp, in seconds; default 300. */
  readonly toleranceSeconds?: number;
  /** Now, in ms since the epoch (tests); default Date.now(). */
  readonly nowMs?: number;
}

/**
 * Checks a webhook request the way the README describes, and returns its event.
 * Throws {@link WebhookSignatureError} when the signature does not match or the
 * timestamp is too old.
 */
export function verifyWebhook(init: VerifyWebhookInit): WebhookEvent {
  const body = typeof init.body === "string" ? init.body : Buffer.from(init.body).toString("utf8");
  const timestamp = init.timestamp ?? "";
  if (!/^\d+$/.test(timestamp)) throw new WebhookSignatureError("missing or malformed ngpu-webhook-timestamp header");
  const ageSeconds = Math.abs((init.nowMs ?? Date.now()) / 1000 - Number(timestamp));
  if (ageSeconds > (init.toleranceSeconds ?? DEFAULT_WEBHOOK_TOLERANCE_SECONDS)) throw new WebhookSignatureError("webhook timestamp outside the tolerance");
  const expected = Buffer.from(createHmac("sha256", init.secret).update(`${timestamp}.${body}`).digest("hex"));
  // The header may carry several signatures (during a secret rotation): any match will do.
  const matches = (init.signature ?? "")
    .split(",")
    .map((part) => part.trim())
    .filter((part) => part.startsWith("v1="))
    .some((part) => {
      const given = Buffer.from(part.slice(3));
      return given.length === expected.length && timingSafeEqual(given, expected);
    });
  if (!matches) throw new WebhookSignatureError("webhook signature does not match");
  return fromJsonString(WebhookEventSchema, body, { ignoreUnknownFields: true });
}
