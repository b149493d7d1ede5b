import type { ServiceImpl } from "@connectrpc/connect";
import { WebhookService } from "../../gen/ngpu/v1/webhook_pb.js";
import { findApp } from "../db/apps.js";
import type { Db } from "../db/database.js";
import { getTask } from "../db/tasks.js";
import { type ClaimedDelivery, deleteWebhook, insertWebhook, replayDelivery } from "../db/webhooks.js";
import { invalidArgument, notFound } from "../errors.js";
import { webhookEventBody } from "../webhooks/event-body.js";
import { privateTargetProblem } from "../webhooks/target-guard.js";
import { type Authenticate, requireFull, requireWorkspaceRead } from "./auth.js";
import { checkHttpUrl, checkPageSize, decodePageToken, encodePageToken, requireString } from "./validate.js";
import { deliveryStateFromProto, deliveryToProto, eventTypesFromProto, webhookToProto } from "./webhook-convert.js";

export interface WebhookServiceDeps {
  readonly db: Db;
  readonly authenticate: Authenticate;
  /** Tells this replica's deliverer that something is due now (a replay). */
  readonly wakeDeliverer: () => void;
  /** May webhooks target private, loopback and link-local addresses (NGPU_WEBHOOK_ALLOW_PRIVATE)? Default false. */
  readonly allowPrivateTargets?: boolean;
}

/** The webhook URL, checked as CreateWebhook and SubmitTask take it: http(s), and public unless private targets are allowed. */
export function checkWebhookUrl(field: string, url: string, allowPrivateTargets: boolean): string {
  const checked = checkHttpUrl(field, url);
  const problem = allowPrivateTargets ? undefined : privateTargetProblem(checked);
  if (problem) throw invalidArgument(field, `${problem} (the operator can allow private targets with NGPU_WEBHOOK_ALLOW_PRIVATE=1)`);
  return checked;
}

/** Webhook subscriptions, the delivery log and replay; everything scoped to the caller's workspace. */
export function createWebhookService(deps: WebhookServiceDeps): ServiceImpl<typeof WebhookService> {
  const { db, authenticate } = deps;

  async function loadDelivery(workspaceId: string, id: string) {
    const row = await db.selectFrom("webhook_deliveries").selectAll().where("id", "=", id).where("workspace_id", "=", workspaceId).executeTakeFirst();
    if (!row) throw notFound("webhook delivery", id);
    const [attempts, context] = await Promise.all([
      db.selectFrom("webhook_attempts").selectAll().where("delivery_id", "=", id).orderBy("number").execute(),
      db
        .selectFrom("tasks as t")
        .innerJoin("apps as a", "a.id", "t.app_id")
        .select("a.name")
        .where("t.id", "=", row.task_id)
        .executeTakeFirstOrThrow(),
    ]);
    const claimed: ClaimedDelivery = {
      id: row.id,
      webhookId: row.webhook_id,
      taskId: row.task_id,
      type: row.type,
      snapshot: row.snapshot,
      createdAt: row.created_at,
      attempt: row.attempt_count,
      url: "",
      secret: "",
      appName: context.name,
    };
    return deliveryToProto(row, { attempts, body: webhookEventBody(claimed) });
  }

  return {
    async createWebhook(req, ctx) {
      const principal = await authenticate(ctx);
      requireFull(principal, "creating a webhook");
      const url = checkWebhookUrl("url", req.url, deps.allowPrivateTargets ?? false);
      const events = eventTypesFromProto("events", req.events);
      const app = await findApp(db, principal.workspaceId, requireString("app", req.app, 128));
      const row = await insertWebhook(db, { workspaceId: principal.workspaceId, appId: app.id, url, events });
      return { webhook: webhookToProto(row, true) };
    },

    async listWebhooks(req, ctx) {
      const principal = await authenticate(ctx);
      requireWorkspaceRead(principal, "listing webhooks");
      const limit = checkPageSize("page_size", req.pageSize, 50);
      const cursor = decodePageToken("page_token", req.pageToken, "s", "number");
      let query = db.selectFrom("webhooks").selectAll().where("workspace_id", "=", principal.workspaceId).where("deleted_at", "is", null).orderBy("seq", "desc").limit(limit + 1);
      if (req.app) query = query.where("app_id", "=", (await findApp(db, principal.workspaceId, requireString("app", req.app, 128))).id);
      if (req.taskId) query = query.where("task_id", "=", (await getTask(db, principal.workspaceId, requireString("task_id", req.taskId, 64))).id);
      if (cursor) query = query.where("seq", "<", String(cursor.s));
      const rows = await query.execute();
      const page = rows.slice(0, limit);
      const last = page[page.length - 1];
      return { webhooks: page.map((r) => webhookToProto(r, false)), nextPageToken: rows.length > limit && last ? encodePageToken({ s: Number(last.seq) }) : "" };
    },

    async deleteWebhook(req, ctx) {
      const principal = await authenticate(ctx);
      requireFull(principal, "deleting a webhook");
      await deleteWebhook(db, principal.workspaceId, requireString("webhook_id", req.webhookId, 64));
      return {};
    },

    async listWebhookDeliveries(req, ctx) {
      const principal = await authenticate(ctx);
      requireWorkspaceRead(principal, "listing webhook deliveries");
      const limit = checkPageSize("page_size", req.pageSize, 50);
      const cursor = decodePageToken("page_token", req.pageToken, "s", "number");
      const states = req.states.map((s, i) => deliveryStateFromProto(`states[${i}]`, s));
      let query = db.selectFrom("webhook_deliveries").selectAll().where("workspace_id", "=", principal.workspaceId).orderBy("seq", "desc").limit(limit + 1);
      if (req.webhookId) query = query.where("webhook_id", "=", requireString("webhook_id", req.webhookId, 64));
      if (req.taskId) query = query.where("task_id", "=", requireString("task_id", req.taskId, 64));
      if (states.length > 0) query = query.where("state", "in", states);
      if (cursor) query = query.where("seq", "<", String(cursor.s));
      const rows = await query.execute();
      const page = rows.slice(0, limit);
      const last = page[page.length - 1];
      return { deliveries: page.map((r) => deliveryToProto(r)), nextPageToken: rows.length > limit && last ? encodePageToken({ s: Number(last.seq) }) : "" };
    },

    async getWebhookDelivery(req, ctx) {
      const principal = await authenticate(ctx);
      requireWorkspaceRead(principal, "reading a webhook delivery");
      return { delivery: await loadDelivery(principal.workspaceId, requireString("delivery_id", req.deliveryId, 64)) };
    },

    async replayWebhookDelivery(req, ctx) {
      const principal = await authenticate(ctx);
      requireFull(principal, "replaying a webhook delivery");
      const id = requireString("delivery_id", req.deliveryId, 64);
      await replayDelivery(db, principal.workspaceId, id);
      deps.wakeDeliverer();
      return { delivery: await loadDelivery(principal.workspaceId, id) };
    },
  };
}
