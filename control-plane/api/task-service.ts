import { create } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { pushable } from "it-pushable";
import {
  type SubmitTaskRequest,
  type Task,
  TaskService,
  type WatchTaskResponse,
  WatchTaskResponseSchema,
} from "../../gen/ngpu/v1/task_pb.js";
import type { Bus } from "../bus/bus.js";
import { stateSignal } from "../bus/task-events.js";
import { findCallableApp } from "../db/apps.js";
import type { Principal } from "../db/credentials.js";
import type { Db } from "../db/database.js";
import { cancelTask, getTask, insertTask, isTerminal, listTasks } from "../db/tasks.js";
import { cancelMessage } from "../dispatch/assignment.js";
import { invalidArgument } from "../errors.js";
import { checkSubmitLimits, hasLimits } from "../db/limits.js";
import { loadNodeCapacity } from "../scheduler/capacity.js";
import { queueReason } from "../scheduler/placement.js";
import type { Webhook } from "../../gen/ngpu/v1/webhook_pb.js";
import { insertWebhook } from "../db/webhooks.js";
import { eventTypesFromProto, webhookToProto } from "./webhook-convert.js";
import { checkWebhookUrl } from "./webhook-service.js";
import { type Authenticate, requireApp, requireNotWidget, visibleApps } from "./auth.js";
import { attemptToProto, taskStateFromProto, taskToProto } from "./convert.js";
import type { InputSchemaValidator } from "./input-schema.js";
import {
  DEFAULT_TIMEOUT_MS,
  checkJson,
  checkMaxAttempts,
  checkQueueTtlMs,
  checkLabels,
  checkPageSize,
  checkTimeoutMs,
  decodePageToken,
  encodePageToken,
  requireString,
} from "./validate.js";

export interface TaskServiceDeps {
  readonly db: Db;
  readonly bus: Bus;
  readonly authenticate: Authenticate;
  readonly inputSchemas: InputSchemaValidator;
  /** How often a watcher re-reads the task even without a signal (a lost NATS message). Default 2000 ms. */
  readonly watchPollMs?: number;
  /** May a task's webhook target private, loopback and link-local addresses? Default false. */
  readonly allowPrivateWebhookTargets?: boolean;
}

const DEFAULT_WAIT_MS = 60_000;
/** Largest per-task spend cap: 1,000,000 USD (and well below 2^53). */
const MAX_TASK_COST_NANO_USD = 1_000_000n * 1_000_000_000n;
const MAX_WAIT_MS = 600_000;

export function createTaskService(deps: TaskServiceDeps): ServiceImpl<typeof TaskService> {
  const { db, bus, authenticate, inputSchemas } = deps;
  const pollMs = deps.watchPollMs ?? 2_000;

  async function submit(principal: Principal, req: SubmitTaskRequest | undefined, field: string): Promise<{ task: Task; created: boolean; webhook?: Webhook }> {
    if (!req) throw invalidArgument(field, "is required");
    const appRef = requireString(`${field}app`, req.app, 200);
    const input = checkJson(`${field}input`, req.input);
    const idempotencyKey = req.idempotencyKey === "" ? undefined : requireString(`${field}idempotency_key`, req.idempotencyKey, 128);
    if (req.priority < -1000 || req.priority > 1000) throw invalidArgument(`${field}priority`, "must be between -1000 and 1000");
    const labels = checkLabels(`${field}labels`, req.labels);
    const timeoutMs = checkTimeoutMs(`${field}timeout_ms`, req.timeoutMs);
    const maxAttempts = checkMaxAttempts(`${field}max_attempts`, req.maxAttempts);
    const queueTtlMs = checkQueueTtlMs(`${field}queue_ttl_ms`, req.queueTtlMs);
    if (req.maxCostNanoUsd < 0n || req.maxCostNanoUsd > MAX_TASK_COST_NANO_USD) {
      throw invalidArgument(`${field}max_cost_nano_usd`, `must be 0 (no cap) or at most ${MAX_TASK_COST_NANO_USD} (1,000,000 USD)`);
    }
    const webhook = req.webhook
      ? { url: checkWebhookUrl(`${field}webhook.url`, req.webhook.url, deps.allowPrivateWebhookTargets ?? false), events: eventTypesFromProto(`${field}webhook.events`, req.webhook.events) }
      : undefined;
    const app = await findCallableApp(db, principal.workspaceId, appRef);
    requireApp(principal, app, "invoke", "submitting a task");
    inputSchemas.check(app.id, app.version, app.input_schema, input);
    // The fee in force now is the one this call pays (README "Published apps"); a cap must leave room past it.
    const callFeeNanoUsd = app.workspace_id === principal.workspaceId ? 0 : Number(app.call_fee_nano_usd);
    if (req.maxCostNanoUsd > 0n && req.maxCostNanoUsd <= BigInt(callFeeNanoUsd)) {
      throw invalidArgument(
        `${field}max_cost_nano_usd`,
        `must be more than the app's per-call fee of ${callFeeNanoUsd} nano-USD, which the cap includes (or 0: no cap)`,
      );
    }
    const limits = principal.limits;
    const newTask = {
      workspaceId: principal.workspaceId,
      appId: app.id,
      appVersion: app.version,
      input,
      priority: req.priority,
      labels,
      idempotencyKey,
      timeoutMs: timeoutMs || app.timeout_ms || DEFAULT_TIMEOUT_MS,
      maxAttempts: maxAttempts || app.max_attempts,
      queueTtlMs: queueTtlMs || app.queue_ttl_ms,
      ...(req.maxCostNanoUsd > 0n ? { maxCostNanoUsd: Number(req.maxCostNanoUsd) } : {}),
      callFeeNanoUsd,
    };
    const limited = hasLimits(limits);
    // With a webhook, task and webhook commit together (the webhook then hears of the task being queued).
    // With limits, the workspace's submits take turns (see checkSubmitLimits), so the limits hold exactly.
    const { id, created, row, hook } =
      webhook || limited
        ? await db.transaction().execute(async (tx) => {
            if (limited) await checkSubmitLimits(tx, principal.workspaceId, limits);
            const inserted = await insertTask(tx, newTask);
            const hookRow = !webhook
              ? undefined
              : inserted.created
                ? await insertWebhook(tx, { workspaceId: principal.workspaceId, taskId: inserted.id, ...webhook })
                : await tx.selectFrom("webhooks").selectAll().where("task_id", "=", inserted.id).where("workspace_id", "=", principal.workspaceId).orderBy("seq").executeTakeFirst();
            return { ...inserted, hook: hookRow };
          })
        : { ...(await insertTask(db, newTask)), hook: undefined };
    if (created) bus.wakeScheduler();
    // A new row came back from the insert; a replayed key needs a read.
    const task = taskToProto(row ? { ...row, app_name: app.name } : await getTask(db, principal.workspaceId, id));
    return { task, created, ...(hook ? { webhook: webhookToProto(hook, true) } : {}) };
  }

  /**
   * The task now, then its changes until it ends. Signals come over NATS; the
   * task is also re-read every pollMs so a lost signal only delays an update.
   */
  async function* follow(principal: Principal, taskId: string, signal: AbortSignal): AsyncGenerator<WatchTaskResponse> {
    const events = pushable<WatchTaskResponse | "poll">({ objectMode: true });
    const unsubscribe = bus.onTaskEvent(taskId, (e) => events.push(e));
    const timer = setInterval(() => events.push("poll"), pollMs);
    const onAbort = () => events.end();
    signal.addEventListener("abort", onAbort);
    try {
      const first = await getTask(db, principal.workspaceId, taskId);
      requireApp(principal, { id: first.app_id, name: first.app_name }, "view", "watching a task");
      const widget = principal.scope === "WIDGET";
      let last = taskToProto(first);
      yield create(WatchTaskResponseSchema, { event: { case: "task", value: widget ? forWidget(last) : last } });
      if (isTerminal(stateName(last))) return;
      for await (const event of events) {
        if (event === "poll" || event.event.case === "task") {
          const now = taskToProto(await getTask(db, principal.workspaceId, taskId));
          if (now.state !== last.state || now.attemptCount !== last.attemptCount) {
            last = now;
            yield create(WatchTaskResponseSchema, { event: { case: "task", value: widget ? forWidget(now) : now } });
          }
          if (isTerminal(stateName(now))) return;
        } else if (!isTerminal(stateName(last)) && (!widget || event.event.case === "progress")) {
          yield event;
        }
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
      clearInterval(timer);
      unsubscribe();
    }
  }

  return {
    async submitTask(req, ctx) {
      const principal = await authenticate(ctx);
      return submit(principal, req, "");
    },

    async runTask(req, ctx) {
      const principal = await authenticate(ctx);
      if (req.waitMs > MAX_WAIT_MS) throw invalidArgument("wait_ms", `must be at most ${MAX_WAIT_MS}`);
      const { task, created } = await submit(principal, req.task, "task.");
      const waitMs = req.waitMs || DEFAULT_WAIT_MS;
      const deadline = AbortSignal.any([ctx.signal, AbortSignal.timeout(waitMs)]);
      let latest = task;
      for await (const event of follow(principal, task.id, deadline)) {
        if (event.event.case === "task") latest = event.event.value;
      }
      return { task: latest, created };
    },

    async getTask(req, ctx) {
      const principal = await authenticate(ctx);
      const id = requireString("task_id", req.taskId, 64);
      const row = await getTask(db, principal.workspaceId, id);
      requireApp(principal, { id: row.app_id, name: row.app_name }, "view", "reading a task");
      const task = taskToProto(row);
      if (row.state === "QUEUED") {
        const app = await db.selectFrom("apps").select(["gpu_count", "gpu_min_memory_bytes", "gpu_models", "pool_policy"]).where("id", "=", row.app_id).executeTakeFirstOrThrow();
        const demand = {
          id,
          appId: row.app_id,
          gpuCount: app.gpu_count,
          minMemoryBytes: app.gpu_min_memory_bytes,
          allowedModels: app.gpu_models.map((m) => m.toLowerCase()),
          pooled: app.pool_policy !== null,
        };
        task.queueReason = queueReason(demand, await loadNodeCapacity(db)) ?? "";
      }
      const attempts = await db.selectFrom("attempts").selectAll().where("task_id", "=", id).orderBy("created_at").orderBy("fencing_token").execute();
      task.attempts = attempts.map(attemptToProto);
      return { task: principal.scope === "WIDGET" ? forWidget(task) : task };
    },

    async *watchTask(req, ctx) {
      const principal = await authenticate(ctx);
      const id = requireString("task_id", req.taskId, 64);
      yield* follow(principal, id, ctx.signal);
    },

    async cancelTask(req, ctx) {
      const principal = await authenticate(ctx);
      const id = requireString("task_id", req.taskId, 64);
      const row = await getTask(db, principal.workspaceId, id);
      requireApp(principal, { id: row.app_id, name: row.app_name }, "invoke", "cancelling a task");
      const result = await cancelTask(db, principal.workspaceId, id);
      if (result.attempt) bus.sendToNode(result.attempt.nodeId, cancelMessage(id, result.attempt.id, "cancelled by the caller"));
      if (result.changed) bus.publishTaskEvent(id, stateSignal(id));
      return { task: taskToProto(await getTask(db, principal.workspaceId, id)) };
    },

    async listTasks(req, ctx: HandlerContext) {
      const principal = await authenticate(ctx);
      requireNotWidget(principal, "listing tasks");
      const limit = checkPageSize("page_size", req.pageSize, 50);
      const cursor = decodePageToken("page_token", req.pageToken, "s", "number");
      const states = req.states.map((s, i) => {
        const name = taskStateFromProto(s);
        if (!name) throw invalidArgument(`states[${i}]`, "is not a task state");
        return name;
      });
      const app = req.app ? await findCallableApp(db, principal.workspaceId, requireString("app", req.app, 200)) : undefined;
      if (app) requireApp(principal, app, "read", "listing tasks");
      const appId = app?.id;
      const appIds = visibleApps(principal);
      const labels = checkLabels("labels", req.labels);
      const rows = await listTasks(
        db,
        principal.workspaceId,
        { ...(appId ? { appId } : {}), ...(appIds ? { appIds } : {}), states, labels, ...(cursor ? { beforeSeq: Number(cursor.s) } : {}) },
        limit + 1,
      );
      const page = rows.slice(0, limit);
      const last = page[page.length - 1];
      return {
        tasks: page.map(taskToProto),
        nextPageToken: rows.length > limit && last ? encodePageToken({ s: last.seq }) : "",
      };
    },
  };
}

/**
 * What a WIDGET key (embedded in a public page) may see of a task: its state,
 * progress and timing; never its input, output, error text (apps may echo input
 * there), labels, idempotency key, nodes or attempts.
 */
function forWidget(task: Task): Task {
  const error = task.error ? "the task failed" : "";
  return { ...task, input: undefined, output: undefined, error, labels: {}, idempotencyKey: "", nodeId: "", gpuIndices: [], attempts: [] };
}

function stateName(task: Task): string {
  return taskStateFromProto(task.state) ?? "";
}
