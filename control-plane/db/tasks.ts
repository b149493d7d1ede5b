import { type RawBuilder, sql } from "kysely";
import { NgpuError, notFound } from "../errors.js";
import { newId } from "../ids.js";
import type { Db } from "./database.js";
import type { ProgressRow, TaskRow } from "./schema.js";
import { CAP_MS } from "./task-cap.js";
import { recordUsage, usageBucket } from "./usage.js";

export const TERMINAL_STATES = ["SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT", "EXPIRED"] as const;
export const ACTIVE_STATES = ["ASSIGNED", "STARTING", "RUNNING"] as const;

export function isTerminal(state: string): boolean {
  return (TERMINAL_STATES as readonly string[]).includes(state);
}

/** A task row with its app's name, as the API shows it. */
export type TaskView = TaskRow & { app_name: string };

export interface NewTaskInput {
  readonly workspaceId: string;
  readonly appId: string;
  readonly appVersion: number;
  readonly input: Record<string, unknown>;
  readonly priority: number;
  readonly labels: Readonly<Record<string, string>>;
  readonly idempotencyKey: string | undefined;
  readonly timeoutMs: number;
  readonly maxAttempts: number;
  /** 0: never expires. */
  readonly queueTtlMs: number;
  /** Spend cap across its attempts, nano-USD; undefined: none. */
  readonly maxCostNanoUsd?: number;
  /** The app's per-call fee as it applies to this caller now (0: none); fixed on the task. */
  readonly callFeeNanoUsd?: number;
}

/** Rows per (workspace, bucket, app) that submissions spread their counting over. */
const SUBMISSION_SHARDS = 16;

/**
 * Inserts a queued task. With an idempotency key already used in the workspace,
 * returns that task instead (created false) and inserts nothing.
 */
export async function insertTask(db: Db, task: NewTaskInput): Promise<{ id: string; created: boolean; row?: TaskRow }> {
  const id = newId("tsk");
  const inserted = await db
    .with("t", (qb) =>
      qb
        .insertInto("tasks")
        .values({
      id,
      workspace_id: task.workspaceId,
      app_id: task.appId,
      app_version: task.appVersion,
      state: "QUEUED",
      priority: task.priority,
      input: JSON.stringify(task.input),
      output: null,
      error: "",
      progress: JSON.stringify(null),
      labels: JSON.stringify(task.labels),
      idempotency_key: task.idempotencyKey ?? null,
      timeout_ms: task.timeoutMs,
      max_attempts: task.maxAttempts,
      max_cost_nano_usd: task.maxCostNanoUsd ?? null,
      call_fee_nano_usd: task.callFeeNanoUsd ?? 0,
      expires_at: task.queueTtlMs > 0 ? (sql`now() + make_interval(secs => ${task.queueTtlMs / 1000})` as never) : null,
      not_before: null,
      assigned_at: null,
      started_at: null,
      ended_at: null,
      current_attempt_id: null,
      node_id: null,
      gpu_indices: "[]",
    })
        .onConflict((oc) => oc.columns(["workspace_id", "idempotency_key"]).where("idempotency_key", "is not", null).doNothing())
        .returningAll(),
    )
    // Counted with the insert, in the submitter's connection's shard (see task_submissions).
    .with("s", (qb) =>
      qb
        .insertInto("task_submissions")
        .columns(["workspace_id", "bucket", "app_id", "shard", "submitted"])
        .expression((eb) =>
          eb.selectFrom("t").select([
            "t.workspace_id",
            usageBucket(sql`t.created_at`).as("bucket") as never,
            "t.app_id",
            sql<number>`pg_backend_pid() % ${SUBMISSION_SHARDS}`.as("shard"),
            sql<number>`1`.as("submitted"),
          ]),
        )
        .onConflict((oc) => oc.columns(["workspace_id", "bucket", "app_id", "shard"]).doUpdateSet({ submitted: sql`task_submissions.submitted + 1` as never })),
    )
    .selectFrom("t")
    .selectAll()
    .executeTakeFirst();
  if (inserted) return { id, created: true, row: inserted };
  const existing = await db
    .selectFrom("tasks")
    .select(["id", sql<boolean>`app_id = ${task.appId} AND input = ${JSON.stringify(task.input)}::jsonb`.as("same")])
    .where("workspace_id", "=", task.workspaceId)
    .where("idempotency_key", "=", task.idempotencyKey ?? "")
    .executeTakeFirstOrThrow();
  // A retry must be the same request; the same key for another one is a caller's bug, not a retry.
  if (!existing.same) throw new NgpuError("ALREADY_EXISTS", `idempotency_key: already used for task ${existing.id}, with a different app or input`);
  return { id: existing.id, created: false };
}

function selectTasks(db: Db) {
  return db.selectFrom("tasks as t").innerJoin("apps as a", "a.id", "t.app_id").selectAll("t").select("a.name as app_name");
}

/** The workspace's task; another workspace's task is "not found", never "forbidden". */
export async function getTask(db: Db, workspaceId: string, taskId: string): Promise<TaskView> {
  const row = await selectTasks(db).where("t.id", "=", taskId).where("t.workspace_id", "=", workspaceId).executeTakeFirst();
  if (!row) throw notFound("task", taskId);
  return row;
}

export interface TaskFilter {
  readonly appId?: string;
  /** Only tasks of these apps (by id): what an INVOKE key may see. */
  readonly appIds?: readonly string[];
  readonly states?: readonly string[];
  readonly labels?: Readonly<Record<string, string>>;
  /** Only tasks older than this sequence number (the page cursor). */
  readonly beforeSeq?: number;
}

/** Newest first. */
export async function listTasks(db: Db, workspaceId: string, filter: TaskFilter, limit: number): Promise<TaskView[]> {
  let query = selectTasks(db).where("t.workspace_id", "=", workspaceId).orderBy("t.seq", "desc").limit(limit);
  if (filter.appId) query = query.where("t.app_id", "=", filter.appId);
  if (filter.appIds) query = filter.appIds.length > 0 ? query.where("t.app_id", "in", [...filter.appIds]) : query.where(sql<boolean>`false`);
  if (filter.states && filter.states.length > 0) query = query.where("t.state", "in", [...filter.states]);
  if (filter.labels && Object.keys(filter.labels).length > 0) query = query.where(sql<boolean>`t.labels @> ${JSON.stringify(filter.labels)}::jsonb`);
  if (filter.beforeSeq !== undefined) query = query.where("t.seq", "<", filter.beforeSeq);
  return query.execute();
}

export interface CancelResult {
  readonly changed: boolean;
  /** Set when an attempt was running: the worker holding it must be told to stop. */
  readonly attempt?: { readonly id: string; readonly nodeId: string };
}

/**
 * Cancels a task in any state. The task ends CANCELLED at once (a terminal
 * state wins over anything that comes later); an attempt on a worker stays
 * active, holding its GPUs, until the worker confirms it stopped.
 */
export async function cancelTask(db: Db, workspaceId: string, taskId: string): Promise<CancelResult> {
  return db.transaction().execute(async (tx) => {
    const task = await tx
      .selectFrom("tasks")
      .select(["state", "current_attempt_id", "node_id"])
      .where("id", "=", taskId)
      .where("workspace_id", "=", workspaceId)
      .forUpdate()
      .executeTakeFirst();
    if (!task) throw notFound("task", taskId);
    if (isTerminal(task.state)) return { changed: false };
    await tx
      .updateTable("tasks")
      .set({ state: "CANCELLED", ended_at: sql`now()` as never, error: "cancelled by the caller" })
      .where("id", "=", taskId)
      .execute();
    if (task.state !== "QUEUED" && task.current_attempt_id && task.node_id) {
      return { changed: true, attempt: { id: task.current_attempt_id, nodeId: task.node_id } };
    }
    return { changed: true };
  });
}

/** Where an attempt's update came from; every field must match the current attempt. */
export interface AttemptRef {
  readonly taskId: string;
  readonly attemptId: string;
  readonly fencingToken: number;
  readonly nodeId: string;
}

/** An attempt moving forward: STARTING (its app instance is starting) or RUNNING. */
export interface AttemptProgress {
  readonly ref: AttemptRef;
  readonly state: "STARTING" | "RUNNING";
  readonly coldStartMs: number;
}

/**
 * Moves attempts (and their tasks, where the attempt is still the task's
 * current one and the task has not ended) forward to STARTING or RUNNING, many
 * in one statement. For each: attemptOk false when the attempt is unknown,
 * superseded or already ended.
 */
export async function markAttemptsProgressing(db: Db, items: readonly AttemptProgress[]): Promise<Array<{ attemptOk: boolean; taskChanged: boolean }>> {
  if (items.length === 0) return [];
  const values = sql.join(
    items.map(
      (i) =>
        sql`(${i.ref.attemptId}::text, ${i.ref.taskId}::text, ${i.ref.nodeId}::text, ${i.ref.fencingToken}::bigint, ${i.state}::text, ${Math.round(i.coldStartMs)}::bigint)`,
    ),
  );
  const result = await sql<{ id: string; task_changed: boolean }>`
    WITH v(attempt_id, task_id, node_id, fencing_token, state, cold_start_ms) AS (VALUES ${values}),
    a AS (
      UPDATE attempts SET state = v.state,
        started_at = CASE WHEN v.state = 'RUNNING' THEN now() ELSE attempts.started_at END,
        cold_start_ms = GREATEST(attempts.cold_start_ms, v.cold_start_ms)
      FROM v WHERE attempts.id = v.attempt_id AND attempts.task_id = v.task_id AND attempts.node_id = v.node_id
        AND attempts.fencing_token = v.fencing_token AND attempts.ended_at IS NULL
      RETURNING attempts.id, attempts.task_id, v.state, v.cold_start_ms
    ), t AS (
      UPDATE tasks SET state = a.state,
        started_at = CASE WHEN a.state = 'RUNNING' THEN now() ELSE tasks.started_at END,
        cold_start_ms = GREATEST(tasks.cold_start_ms, a.cold_start_ms)
      FROM a WHERE tasks.id = a.task_id AND tasks.current_attempt_id = a.id
        AND (tasks.state = 'ASSIGNED' OR (tasks.state = 'STARTING' AND a.state = 'RUNNING'))
      RETURNING tasks.id
    )
    SELECT a.id, t.id IS NOT NULL AS task_changed FROM a LEFT JOIN t ON t.id = a.task_id`.execute(db);
  const byId = new Map(result.rows.map((r) => [r.id, r.task_changed]));
  return items.map((i) => ({ attemptOk: byId.has(i.ref.attemptId), taskChanged: byId.get(i.ref.attemptId) ?? false }));
}

export interface AttemptOutcome {
  /** RELEASED: the worker gave the attempt back unfinished (draining); it runs elsewhere. */
  readonly outcome: "SUCCEEDED" | "FAILED" | "CANCELLED" | "RELEASED";
  readonly output: unknown;
  readonly error: string;
  /** A failure that may go away on another try (the worker's, not the app's verdict). */
  readonly retryable: boolean;
  readonly workerStartedAtMs: number;
  readonly workerEndedAtMs: number;
}

export interface FinishResult {
  /** False when the attempt is unknown, superseded or already ended: nothing changed. */
  readonly attemptOk: boolean;
  /** The task moved (to its outcome, or back to the queue). */
  readonly taskChanged: boolean;
  /** The task went back to the queue for another try. */
  readonly requeued: boolean;
}

/** Wait before try n+1 after a retryable failure: 1 s, 2 s, 4 s … up to 60 s. */
export function retryBackoffMs(attemptsSoFar: number): number {
  return Math.min(60_000, 1000 * 2 ** Math.max(0, attemptsSoFar - 1));
}

/**
 * Ends a failed or released attempt and, if it is still the task's current
 * attempt and the task has not ended, decides: back to the queue (released, or
 * failed retryably with tries left) or FAILED. GPU time is the measured
 * execution time times the GPUs the attempt held (computed here, not taken from
 * the worker). Changes nothing for an unknown, superseded or ended attempt.
 * Succeeded and cancelled attempts need no decision: finishAttemptsPlainly.
 */
export async function finishAttemptDeciding(db: Db, ref: AttemptRef, outcome: AttemptOutcome & { readonly outcome: "FAILED" | "RELEASED" }): Promise<FinishResult> {
  const executionMs = Math.max(0, Math.round(outcome.workerEndedAtMs - outcome.workerStartedAtMs));
  const endAttempt = sql`
    UPDATE attempts SET state = ${outcome.outcome}, ended_at = now(), error = ${outcome.error},
      worker_started_at_ms = ${Math.round(outcome.workerStartedAtMs)}, worker_ended_at_ms = ${Math.round(outcome.workerEndedAtMs)},
      gpu_ms = ${executionMs}::bigint * jsonb_array_length(gpu_indices)
    WHERE id = ${ref.attemptId} AND task_id = ${ref.taskId} AND node_id = ${ref.nodeId}
      AND fencing_token = ${ref.fencingToken} AND ended_at IS NULL
    RETURNING id, task_id, node_id, gpu_ms`;
  const countCompleted = outcome.outcome === "RELEASED" ? 0 : 1;
  // Rarer than successes, and a decision to make: one transaction, not batched.
  return db.transaction().execute(async (tx) => {
    const ended = await endAttempt.execute(tx);
    const attempt = ended.rows[0] as { id: string; task_id: string; node_id: string; gpu_ms: number } | undefined;
    if (!attempt) return { attemptOk: false, taskChanged: false, requeued: false };
    const [usage] = await recordUsage(tx, [attempt.id]);
    if (countCompleted) await sql`UPDATE nodes SET completed_attempts = completed_attempts + 1 WHERE id = ${attempt.node_id}`.execute(tx);
    const task = await tx
      .selectFrom("tasks")
      .select(["state", "current_attempt_id", "attempt_count", "max_attempts", "max_cost_nano_usd"])
      .where("id", "=", ref.taskId)
      .forUpdate()
      .executeTakeFirst();
    if (!task || task.current_attempt_id !== attempt.id || !(ACTIVE_STATES as readonly string[]).includes(task.state)) {
      return { attemptOk: true, taskChanged: false, requeued: false };
    }
    const retry = outcome.outcome === "RELEASED" || (outcome.retryable && task.attempt_count < task.max_attempts);
    if (retry) {
      const waitMs = outcome.outcome === "RELEASED" ? 0 : retryBackoffMs(task.attempt_count);
      await tx
        .updateTable("tasks")
        .set({
          ...REQUEUE,
          not_before: sql`now() + make_interval(secs => ${waitMs / 1000})` as never,
          // Work handed back is not a try: it does not count towards max_attempts.
          ...(outcome.outcome === "RELEASED" ? { attempt_count: sql`attempt_count - 1` as never } : {}),
        })
        .where("id", "=", ref.taskId)
        .execute();
      return { attemptOk: true, taskChanged: true, requeued: true };
    }
    // Past its spend cap's budget the attempt was billed only up to the cap: the task shows that time.
    const billed = task.max_cost_nano_usd !== null && usage && usage.executionMs < executionMs ? usage : undefined;
    await tx
      .updateTable("tasks")
      .set({
        state: "FAILED",
        ended_at: sql`now()` as never,
        error: outcome.error,
        started_at: sql`COALESCE(started_at, now())` as never,
        execution_ms: billed?.executionMs ?? executionMs,
        gpu_ms: billed?.gpuMs ?? attempt.gpu_ms,
      })
      .where("id", "=", ref.taskId)
      .execute();
    return { attemptOk: true, taskChanged: true, requeued: false };
  });
}

/** A successful or cancelled attempt's end: no retry decision to make. */
export interface PlainFinish {
  readonly ref: AttemptRef;
  readonly outcome: AttemptOutcome & { readonly outcome: "SUCCEEDED" | "CANCELLED" };
}

/**
 * Ends many succeeded or cancelled attempts in one statement (one round trip and
 * one commit for a whole batch: this path bounds task throughput), moving each
 * task that is still on that attempt to the outcome. A task already cancelled
 * gets the time its attempt ran.
 */
export async function finishAttemptsPlainly(db: Db, items: readonly PlainFinish[]): Promise<FinishResult[]> {
  if (items.length === 0) return [];
  const values = sql.join(
    items.map(({ ref, outcome: o }) => {
      const executionMs = Math.max(0, Math.round(o.workerEndedAtMs - o.workerStartedAtMs));
      const output = o.outcome === "SUCCEEDED" ? JSON.stringify(o.output ?? null) : null;
      return sql`(${ref.attemptId}::text, ${ref.taskId}::text, ${ref.nodeId}::text, ${ref.fencingToken}::bigint, ${o.outcome}::text,
        ${output}::jsonb, ${o.error}::text, ${Math.round(o.workerStartedAtMs)}::bigint, ${Math.round(o.workerEndedAtMs)}::bigint, ${executionMs}::bigint)`;
    }),
  );
  const statement = sql<{ id: string; task_changed: boolean }>`
    WITH reported(attempt_id, task_id, node_id, fencing_token, outcome, output, error, started_ms, ended_ms, execution_ms) AS (VALUES ${values}),
    -- A task's spend cap holds however fast the attempt was (the monitor may not have looked yet):
    -- past what its budget buys, it ends CANCELLED at the cap, without output, as the monitor would
    -- have ended it, so the task shows the execution time that is billed.
    budget AS MATERIALIZED (
      SELECT r.attempt_id, t.max_cost_nano_usd, ${CAP_MS}::bigint AS cap_ms
      FROM reported r JOIN attempts at ON at.id = r.attempt_id JOIN tasks t ON t.id = at.task_id LEFT JOIN nodes n ON n.id = at.node_id
      WHERE t.max_cost_nano_usd IS NOT NULL
    ),
    v AS (
      SELECT r.attempt_id, r.task_id, r.node_id, r.fencing_token, r.started_ms, r.ended_ms,
        CASE WHEN over THEN 'CANCELLED' ELSE r.outcome END AS outcome,
        CASE WHEN over THEN NULL ELSE r.output END AS output,
        CASE WHEN over THEN 'spend cap of ' || trim_scale(b.max_cost_nano_usd::numeric / 1000000000) || ' USD reached' ELSE r.error END AS error,
        CASE WHEN b.cap_ms IS NULL THEN r.execution_ms ELSE LEAST(r.execution_ms, b.cap_ms) END AS execution_ms
      FROM reported r LEFT JOIN budget b ON b.attempt_id = r.attempt_id,
        LATERAL (SELECT COALESCE(r.outcome = 'SUCCEEDED' AND r.execution_ms > b.cap_ms, false) AS over) o
    ),
    a AS (
      UPDATE attempts SET state = v.outcome, ended_at = now(), error = v.error,
        worker_started_at_ms = v.started_ms, worker_ended_at_ms = v.ended_ms,
        gpu_ms = v.execution_ms * jsonb_array_length(attempts.gpu_indices)
      FROM v WHERE attempts.id = v.attempt_id AND attempts.task_id = v.task_id AND attempts.node_id = v.node_id
        AND attempts.fencing_token = v.fencing_token AND attempts.ended_at IS NULL
      RETURNING attempts.id, attempts.task_id, attempts.node_id, attempts.gpu_ms, v.outcome, v.output, v.error, v.execution_ms
    ),
    n AS (
      UPDATE nodes SET completed_attempts = completed_attempts + c.k
      FROM (SELECT node_id, count(*) AS k FROM a GROUP BY node_id) c
      WHERE nodes.id = c.node_id AND nodes.id IN (${lockNodesInOrder(sql`SELECT node_id FROM a`)})
      RETURNING nodes.id
    ),
    t AS (
      UPDATE tasks SET state = a.outcome, ended_at = now(), output = a.output, error = a.error,
        started_at = COALESCE(tasks.started_at, now()), execution_ms = a.execution_ms, gpu_ms = a.gpu_ms,
        progress = CASE WHEN a.outcome = 'SUCCEEDED'
          THEN jsonb_build_object('percent', 100, 'step', COALESCE((tasks.progress->>'totalSteps')::int, 0),
            'totalSteps', COALESCE((tasks.progress->>'totalSteps')::int, 0), 'message', 'done')
          ELSE tasks.progress END
      FROM a WHERE tasks.id = a.task_id AND tasks.current_attempt_id = a.id AND tasks.state IN ('ASSIGNED', 'STARTING', 'RUNNING')
      RETURNING tasks.id
    ),
    -- Cancelled while it ran (the cancel won, whatever the attempt then did): the task ended at
    -- the cancel, and now the worker says how long it ran.
    c AS (
      UPDATE tasks SET execution_ms = a.execution_ms, gpu_ms = a.gpu_ms
      FROM a WHERE tasks.id = a.task_id AND tasks.current_attempt_id = a.id AND tasks.state = 'CANCELLED'
      RETURNING tasks.id
    )
    SELECT a.id, t.id IS NOT NULL AS task_changed FROM a LEFT JOIN t ON t.id = a.task_id`;
  // Still one round trip per batch for the ends, plus one for all their usage records.
  const rows = await endAttempts(db, statement, (r) => r.id);
  const byId = new Map(rows.map((r) => [r.id, r.task_changed]));
  return items.map((i) => ({ attemptOk: byId.has(i.ref.attemptId), taskChanged: byId.get(i.ref.attemptId) ?? false, requeued: false }));
}

/**
 * Runs a statement that ends attempts, and records their usage in the same
 * transaction: an attempt's end and its bill commit together or not at all.
 */
export async function endAttempts<R>(db: Db, statement: RawBuilder<R>, attemptId: (row: R) => string): Promise<R[]> {
  return db.transaction().execute(async (tx) => {
    const ended = await statement.execute(tx);
    await recordUsage(tx, ended.rows.map(attemptId));
    return ended.rows;
  });
}

/** Column values that put a task back in the queue, with no attempt. */
const REQUEUE = {
  state: "QUEUED",
  current_attempt_id: null,
  node_id: null,
  gpu_indices: "[]",
  assigned_at: null,
  started_at: null,
  progress: JSON.stringify(null),
} as const;

/** Saves the latest progress of many tasks in one statement (progress is frequent; only the last matters). */
export async function saveProgress(db: Db, updates: ReadonlyArray<{ taskId: string; attemptId: string; progress: ProgressRow }>): Promise<void> {
  if (updates.length === 0) return;
  const values = sql.join(updates.map((u) => sql`(${u.taskId}, ${u.attemptId}, ${JSON.stringify(u.progress)})`));
  await sql`
    UPDATE tasks SET progress = v.progress::jsonb
    FROM (VALUES ${values}) AS v(task_id, attempt_id, progress)
    WHERE tasks.id = v.task_id AND tasks.current_attempt_id = v.attempt_id AND tasks.state IN ('ASSIGNED', 'STARTING', 'RUNNING')`.execute(db);
}

/**
 * Ends the given active attempts as LOST (their node went away) and counts
 * them against their nodes. Each task whose current attempt it was goes back
 * to the queue if it has tries left, and otherwise ends FAILED. Returns the
 * tasks that changed.
 */
export async function requeueLostAttempts(db: Db, attemptIds: readonly string[], reason: string): Promise<Array<{ id: string; state: string }>> {
  if (attemptIds.length === 0) return [];
  const statement = sql<{ attempt_id: string; id: string | null; state: string | null }>`
    WITH a AS (
      UPDATE attempts SET state = 'LOST', ended_at = now(), error = ${reason}
      WHERE id IN (${sql.join([...attemptIds])}) AND ended_at IS NULL
      RETURNING id, task_id, node_id
    ), n AS (
      UPDATE nodes SET lost_attempts = lost_attempts + c.lost
      FROM (SELECT node_id, count(*) AS lost FROM a GROUP BY node_id) c
      WHERE nodes.id = c.node_id AND nodes.id IN (${lockNodesInOrder(sql`SELECT node_id FROM a`)})
      RETURNING nodes.id
    ), t AS (
    UPDATE tasks SET
      state = CASE WHEN tasks.attempt_count < tasks.max_attempts THEN 'QUEUED' ELSE 'FAILED' END,
      ended_at = CASE WHEN tasks.attempt_count < tasks.max_attempts THEN NULL ELSE now() END,
      error = CASE WHEN tasks.attempt_count < tasks.max_attempts THEN tasks.error
        ELSE ${reason} || ' (attempt ' || tasks.attempt_count || ' of ' || tasks.max_attempts || ')' END,
      current_attempt_id = CASE WHEN tasks.attempt_count < tasks.max_attempts THEN NULL ELSE tasks.current_attempt_id END,
      node_id = CASE WHEN tasks.attempt_count < tasks.max_attempts THEN NULL ELSE tasks.node_id END,
      gpu_indices = CASE WHEN tasks.attempt_count < tasks.max_attempts THEN '[]'::jsonb ELSE tasks.gpu_indices END,
      assigned_at = CASE WHEN tasks.attempt_count < tasks.max_attempts THEN NULL ELSE tasks.assigned_at END,
      started_at = CASE WHEN tasks.attempt_count < tasks.max_attempts THEN NULL ELSE tasks.started_at END,
      progress = CASE WHEN tasks.attempt_count < tasks.max_attempts THEN NULL ELSE tasks.progress END,
      not_before = NULL
    FROM a WHERE tasks.id = a.task_id AND tasks.current_attempt_id = a.id AND tasks.state IN ('ASSIGNED', 'STARTING', 'RUNNING')
    RETURNING tasks.id, tasks.state
    )
    SELECT a.id AS attempt_id, t.id, t.state FROM a LEFT JOIN t ON t.id = a.task_id`;
  const rows = await endAttempts(db, statement, (r) => r.attempt_id);
  return rows.flatMap((r) => (r.id && r.state ? [{ id: r.id, state: r.state }] : []));
}

/**
 * The control plane's own execution timeout: a running attempt past its task's
 * timeout ends TIMED_OUT, billed up to the timeout and not a millisecond more,
 * and so does its task. Returns what ended, so the workers can be told to stop.
 */
export async function timeOutAttempts(db: Db): Promise<Array<{ taskId: string; attemptId: string; nodeId: string }>> {
  const statement = sql<{ task_id: string | null; attempt_id: string; node_id: string }>`
    WITH late AS (
      SELECT at.id, t.timeout_ms FROM attempts at JOIN tasks t ON t.current_attempt_id = at.id
      WHERE at.ended_at IS NULL AND at.state = 'RUNNING' AND t.state = 'RUNNING'
        AND at.started_at + make_interval(secs => t.timeout_ms / 1000.0) < now()
      LIMIT 500
    ), a AS (
      UPDATE attempts SET state = 'TIMED_OUT',
        ended_at = attempts.started_at + make_interval(secs => late.timeout_ms / 1000.0),
        error = 'execution timed out after ' || late.timeout_ms || ' ms',
        gpu_ms = late.timeout_ms * jsonb_array_length(attempts.gpu_indices)
      FROM late WHERE attempts.id = late.id AND attempts.ended_at IS NULL
      RETURNING attempts.id, attempts.task_id, attempts.node_id, attempts.gpu_ms, attempts.ended_at, attempts.error, late.timeout_ms
    )
    , t AS (
      UPDATE tasks SET state = 'TIMED_OUT', ended_at = a.ended_at, error = a.error, execution_ms = a.timeout_ms, gpu_ms = a.gpu_ms
      FROM a WHERE tasks.id = a.task_id AND tasks.current_attempt_id = a.id AND tasks.state = 'RUNNING'
      RETURNING tasks.id
    )
    SELECT t.id AS task_id, a.id AS attempt_id, a.node_id FROM a LEFT JOIN t ON t.id = a.task_id`;
  const rows = await endAttempts(db, statement, (r) => r.attempt_id);
  return rows.flatMap((r) => (r.task_id ? [{ taskId: r.task_id, attemptId: r.attempt_id, nodeId: r.node_id }] : []));
}

/**
 * Attempts still held by a worker although their task ended (cancelled, timed
 * out) and the worker has not confirmed within graceMs: ended by the control
 * plane as CANCELLED, billed up to the task's end. Returns them, to tell the workers again.
 */
export async function endAbandonedAttempts(db: Db, graceMs: number): Promise<Array<{ taskId: string; attemptId: string; nodeId: string }>> {
  const statement = sql<{ task_id: string; id: string; node_id: string }>`
    UPDATE attempts SET state = 'CANCELLED', ended_at = GREATEST(t.ended_at, COALESCE(attempts.started_at, t.ended_at)),
      error = 'the task ended and the worker did not confirm stopping',
      gpu_ms = CASE WHEN attempts.started_at IS NULL THEN 0
        ELSE (GREATEST(0, EXTRACT(EPOCH FROM (t.ended_at - attempts.started_at)) * 1000))::bigint * jsonb_array_length(attempts.gpu_indices) END
    FROM tasks t
    WHERE t.id = attempts.task_id AND attempts.ended_at IS NULL
      AND t.state IN ('SUCCEEDED', 'FAILED', 'CANCELLED', 'TIMED_OUT', 'EXPIRED')
      AND t.ended_at < now() - make_interval(secs => ${graceMs / 1000})
    RETURNING attempts.task_id, attempts.id, attempts.node_id`;
  const rows = await endAttempts(db, statement, (r) => r.id);
  return rows.map((r) => ({ taskId: r.task_id, attemptId: r.id, nodeId: r.node_id }));
}

/** Queued tasks past their time-to-live end EXPIRED. */
export async function expireQueuedTasks(db: Db): Promise<string[]> {
  const result = await sql<{ id: string }>`
    UPDATE tasks SET state = 'EXPIRED', ended_at = now(), error = 'waited in the queue longer than its time-to-live'
    WHERE state = 'QUEUED' AND expires_at < now()
    RETURNING id`.execute(db);
  return result.rows.map((r) => r.id);
}

/**
 * Locks the given nodes' rows in id order, as heartbeat writes (touchNodes) do:
 * multi-row updates of nodes that all take their locks in one order cannot
 * deadlock each other.
 */
function lockNodesInOrder(nodeIds: ReturnType<typeof sql>) {
  return sql`SELECT id FROM nodes WHERE id IN (${nodeIds}) ORDER BY id FOR NO KEY UPDATE`;
}
