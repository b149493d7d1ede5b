import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  type Webhook,
  type WebhookDelivery,
  WebhookDeliverySchema,
  WebhookDeliveryState,
  WebhookEventType,
  WebhookSchema,
} from "../../gen/ngpu/v1/webhook_pb.js";
import type { Selectable } from "kysely";
import type { WebhookAttemptTable, WebhookDeliveryTable, WebhookTable } from "../db/schema.js";
import { WEBHOOK_EVENT_TYPES, type WebhookEventTypeName } from "../db/webhooks.js";
import { invalidArgument } from "../errors.js";

/** Webhook rows to API messages and back (kept apart from convert.ts: one capability, one file). */

const EVENT_TYPES: Record<WebhookEventTypeName, WebhookEventType> = {
  "task.state_changed": WebhookEventType.STATE_CHANGED,
  "task.progress": WebhookEventType.PROGRESS,
  "task.completed": WebhookEventType.COMPLETED,
};

const DELIVERY_STATES: Record<string, WebhookDeliveryState> = {
  PENDING: WebhookDeliveryState.PENDING,
  DELIVERED: WebhookDeliveryState.DELIVERED,
  FAILED: WebhookDeliveryState.FAILED,
};

/** Requested event types; none means all. */
export function eventTypesFromProto(field: string, events: readonly WebhookEventType[]): WebhookEventTypeName[] {
  if (events.length === 0) return [...WEBHOOK_EVENT_TYPES];
  const names = events.map((e, i) => {
    const name = WEBHOOK_EVENT_TYPES.find((n) => EVENT_TYPES[n] === e);
    if (!name) throw invalidArgument(`${field}[${i}]`, "is not a webhook event type");
    return name;
  });
  return [...new Set(names)];
}

export function deliveryStateFromProto(field: string, state: WebhookDeliveryState): string {
  const name = Object.entries(DELIVERY_STATES).find(([, v]) => v === state)?.[0];
  if (!name) throw invalidArgument(field, "is not a delivery state");
  return name;
}

export function webhookToProto(row: Selectable<WebhookTable>, withSecret: boolean): Webhook {
  return create(WebhookSchema, {
    id: row.id,
    workspaceId: row.workspace_id,
    appId: row.app_id ?? "",
    taskId: row.task_id ?? "",
    url: row.url,
    events: row.events.map((e) => EVENT_TYPES[e as WebhookEventTypeName] ?? WebhookEventType.UNSPECIFIED),
    secret: withSecret ? row.secret : "",
    createTime: timestampFromDate(row.created_at),
  });
}

export function deliveryToProto(
  row: Selectable<WebhookDeliveryTable>,
  detail?: { attempts: ReadonlyArray<Selectable<WebhookAttemptTable>>; body: string },
): WebhookDelivery {
  return create(WebhookDeliverySchema, {
    id: row.id,
    webhookId: row.webhook_id,
    taskId: row.task_id,
    type: row.type,
    state: DELIVERY_STATES[row.state] ?? WebhookDeliveryState.UNSPECIFIED,
    attemptCount: row.attempt_count,
    createTime: timestampFromDate(row.created_at),
    ...(row.state === "PENDING" ? { nextAttemptTime: timestampFromDate(row.next_attempt_at) } : {}),
    ...(row.delivered_at ? { deliverTime: timestampFromDate(row.delivered_at) } : {}),
    lastStatusCode: row.last_status_code,
    lastError: row.last_error,
    attempts: (detail?.attempts ?? []).map((a) => ({
      number: a.number,
      time: timestampFromDate(a.at),
      statusCode: a.status_code,
      error: a.error,
      durationMs: BigInt(a.duration_ms),
    })),
    body: detail?.body ?? "",
  });
}
