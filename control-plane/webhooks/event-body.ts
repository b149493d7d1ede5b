import { create, toJsonString } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { WebhookEventSchema } from "../../gen/ngpu/v1/webhook_event_pb.js";
import { taskToProto } from "../api/convert.js";
import type { TaskView } from "../db/tasks.js";
import type { ClaimedDelivery } from "../db/webhooks.js";

const DATE_COLUMNS = ["created_at", "assigned_at", "started_at", "ended_at", "expires_at", "not_before"] as const;

/**
 * The POST body: a WebhookEvent as canonical protobuf JSON, the task as the
 * API shows it. Built from the stored snapshot, so every attempt and replay
 * sends the same bytes.
 */
export function webhookEventBody(delivery: ClaimedDelivery): string {
  const row: Record<string, unknown> = { ...delivery.snapshot, input: {}, app_name: delivery.appName };
  row.output = delivery.snapshot.output ?? null;
  for (const column of DATE_COLUMNS) {
    const value = row[column];
    row[column] = typeof value === "string" ? new Date(value) : null;
  }
  const task = taskToProto(row as TaskView);
  task.input = undefined;
  // Still queued at the event: waited until the event, not until whenever this is sent.
  if (!row.assigned_at && !row.ended_at) task.queueMs = BigInt(Math.max(0, delivery.createdAt.getTime() - (row.created_at as Date).getTime()));
  return toJsonString(
    WebhookEventSchema,
    create(WebhookEventSchema, { id: delivery.id, type: delivery.type, createTime: timestampFromDate(delivery.createdAt), task, webhookId: delivery.webhookId }),
  );
}
