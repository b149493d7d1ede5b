import { sql } from "kysely";
import { NgpuError, notFound } from "../errors.js";
import { newId, newSecret } from "../ids.js";
import type { Db } from "./database.js";

/** A delivery claimed for one attempt, with what sending it needs. */
export interface ClaimedDelivery {
  readonly id: string;
  readonly webhookId: string;
  readonly taskId: string;
  readonly type: string;
  readonly snapshot: Record<string, unknown>;
  readonly createdAt: Date;
  /** This attempt's number (1 for the first). */
  readonly attempt: number;
  readonly url: string;
  readonly secret: string;
  readonly appName: string;
}

/**
 * Claims up to `limit` due deliveries for one attempt each. SKIP LOCKED lets
 * every replica claim at once without taking the same rows; the claim is a
 * lease (next_attempt_at moves `leaseMs` ahead), so a replica that dies while
 * sending leaves its deliveries to be claimed again, and no transaction stays
 * open during the HTTP call.
 */
export async function claimDueDeliveries(db: Db, limit: number, leaseMs: number): Promise<ClaimedDelivery[]> {
  const result = await sql<{
    id: string;
    webhook_id: string;
    task_id: string;
    type: string;
    snapshot: Record<string, unknown>;
    created_at: Date;
    attempt_count: number;
    url: string;
    secret: string;
    app_name: string;
  }>`
    WITH c AS (
      SELECT id FROM webhook_deliveries WHERE state = 'PENDING' AND next_attempt_at <= now()
      ORDER BY next_attempt_at LIMIT ${limit} FOR UPDATE SKIP LOCKED
    ), d AS (
      UPDATE webhook_deliveries SET attempt_count = attempt_count + 1, next_attempt_at = now() + make_interval(secs => ${leaseMs / 1000})
      FROM c WHERE webhook_deliveries.id = c.id
      RETURNING webhook_deliveries.*
    )
    SELECT d.id, d.webhook_id, d.task_id, d.type, d.snapshot, d.created_at, d.attempt_count, w.url, w.secret, a.name AS app_name
    FROM d JOIN webhooks w ON w.id = d.webhook_id JOIN tasks t ON t.id = d.task_id JOIN apps a ON a.id = t.app_id
    ORDER BY d.seq`.execute(db);
  return result.rows.map((r) => ({
    id: r.id,
    webhookId: r.webhook_id,
    taskId: r.task_id,
    type: r.type,
    snapshot: r.snapshot,
    createdAt: new Date(r.created_at),
    attempt: r.attempt_count,
    url: r.url,
    secret: r.secret,
    appName: r.app_name,
  }));
}

/** How one attempt went. */
export interface AttemptResult {
  readonly deliveryId: string;
  readonly attempt: number;
  readonly delivered: boolean;
  /** 0 when no response came. */
  readonly statusCode: number;
  readonly error: string;
  readonly durationMs: number;
  /** When not delivered: wait this long before the next try, or give up (FAILED) when undefined. */
  readonly retryInMs: number | undefined;
}

/** Logs attempts and moves their deliveries on, all in one statement. */
export async function recordAttempts(db: Db, results: readonly AttemptResult[]): Promise<void> {
  if (results.length === 0) return;
  const values = sql.join(
    results.map(
      (r) =>
        sql`(${r.deliveryId}::text, ${r.attempt}::int, ${r.delivered}::boolean, ${r.statusCode}::int, ${r.error}::text, ${Math.round(r.durationMs)}::int, ${r.retryInMs ?? null}::float8)`,
    ),
  );
  await sql`
    WITH v(id, attempt, delivered, status_code, error, duration_ms, retry_ms) AS (VALUES ${values}),
    logged AS (
      INSERT INTO webhook_attempts (delivery_id, number, status_code, error, duration_ms)
      SELECT id, attempt, status_code, error, duration_ms FROM v
      ON CONFLICT DO NOTHING
    )
    UPDATE webhook_deliveries d SET
      state = CASE WHEN v.delivered THEN 'DELIVERED' WHEN v.retry_ms IS NULL THEN 'FAILED' ELSE 'PENDING' END,
      delivered_at = CASE WHEN v.delivered THEN now() ELSE d.delivered_at END,
      next_attempt_at = CASE WHEN v.retry_ms IS NULL THEN d.next_attempt_at ELSE now() + make_interval(secs => v.retry_ms / 1000) END,
      last_status_code = v.status_code, last_error = v.error
    FROM v WHERE d.id = v.id AND d.attempt_count = v.attempt`.execute(db);
}

/** Event type names as stored and sent. */
export const WEBHOOK_EVENT_TYPES = ["task.state_changed", "task.progress", "task.completed"] as const;
export type WebhookEventTypeName = (typeof WEBHOOK_EVENT_TYPES)[number];

export interface NewWebhook {
  readonly workspaceId: string;
  readonly appId?: string | undefined;
  readonly taskId?: string | undefined;
  readonly url: string;
  readonly events: readonly WebhookEventTypeName[];
}

/** Inserts a webhook with a fresh signing secret. */
export async function insertWebhook(db: Db, webhook: NewWebhook) {
  return db
    .insertInto("webhooks")
    .values({
      id: newId("whk"),
      workspace_id: webhook.workspaceId,
      app_id: webhook.appId ?? null,
      task_id: webhook.taskId ?? null,
      url: webhook.url,
      events: JSON.stringify(webhook.events),
      secret: `whsec_${newSecret()}`,
      deleted_at: null,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** Deletes a workspace's webhook: no new deliveries, and pending ones end FAILED. */
export async function deleteWebhook(db: Db, workspaceId: string, webhookId: string): Promise<void> {
  await db.transaction().execute(async (tx) => {
    const row = await tx
      .updateTable("webhooks")
      .set({ deleted_at: sql`now()` as never })
      .where("id", "=", webhookId)
      .where("workspace_id", "=", workspaceId)
      .where("deleted_at", "is", null)
      .returning("id")
      .executeTakeFirst();
    if (!row) throw notFound("webhook", webhookId);
    await tx
      .updateTable("webhook_deliveries")
      .set({ state: "FAILED", last_error: "the webhook was deleted" })
      .where("webhook_id", "=", webhookId)
      .where("state", "=", "PENDING")
      .execute();
  });
}

/** Makes a delivery due now again, whatever its state; its attempts so far stay in the log. */
export async function replayDelivery(db: Db, workspaceId: string, deliveryId: string): Promise<void> {
  const row = await db
    .updateTable("webhook_deliveries")
    .set({ state: "PENDING", next_attempt_at: sql`now()` as never })
    .where("id", "=", deliveryId)
    .where("workspace_id", "=", workspaceId)
    .where((eb) => eb.exists(eb.selectFrom("webhooks as w").select("w.id").whereRef("w.id", "=", "webhook_deliveries.webhook_id").where("w.deleted_at", "is", null)))
    .returning("id")
    .executeTakeFirst();
  if (row) return;
  const exists = await db.selectFrom("webhook_deliveries").select("id").where("id", "=", deliveryId).where("workspace_id", "=", workspaceId).executeTakeFirst();
  if (!exists) throw notFound("webhook delivery", deliveryId);
  throw new NgpuError("FAILED_PRECONDITION", `webhook delivery ${JSON.stringify(deliveryId)} belongs to a deleted webhook`);
}
