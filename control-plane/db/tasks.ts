import { sql } from "kysely";
import { notFound } from "../errors.js";
import { newId } from "../ids.js";
import type { Db } from "./database.js";
import type { ProgressRow, TaskRow } from "./schema.js";

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
}

/**
 * Inserts a queued task. With an idempotency key already used in the workspace,
 * returns that task instead (created false) and inserts nothing.
 */
export async function insertTask(db: Db, task: NewTaskInput): Promise<{ id: string; created: boolean }> {
  const id = newId("tsk");
  const inserted = await db
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
      assigned_at: null,
      started_at: null,
      ended_at: null,
      current_attempt_id: null,
      node_id: null,
      gpu_indices: "[]",
    })
    .onConflict((oc) => oc.columns(["workspace_id", "idempotency_key"]).where("idempotency_key", "is not", null).doNothing())
    .returning("id")
    .executeTakeFirst();
  if (inserted) return { id, created: true };
  const existing = await db
    .selectFrom("tasks")
    .select("id")
    .where("workspace_id", "=", task.workspaceId)
    .where("idempotency_key", "=", task.idempotencyKey ?? "")
    .executeTakeFirstOrThrow();
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
  readonly states?: readonly string[];
  readonly labels?: Readonly<Record<string, string>>;
  /** Only tasks older than this sequence number (the page cursor). */
  readonly beforeSeq?: number;
}

/** Newest first. */
export async function listTasks(db: Db, workspaceId: string, filter: TaskFilter, limit: number): Promise<TaskView[]> {
  let query = selectTasks(db).where("t.workspace_id", "=", workspaceId).orderBy("t.seq", "desc").limit(limit);
  if (filter.appId) query = query.where("t.app_id", "=", filter.appId);
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

/**
 * Moves the attempt (and its task, if the attempt is still the task's current
 * one and the task has not ended) forward to STARTING or RUNNING. Returns
 * false when the attempt is unknown, superseded or already ended.
 */
export async function markAttemptProgressing(
  db: Db,
  ref: AttemptRef,
  state: "STARTING" | "RUNNING",
  coldStartMs: number,
): Promise<{ attemptOk: boolean; taskChanged: boolean }> {
  const from = state === "STARTING" ? ["ASSIGNED"] : ["ASSIGNED", "STARTING"];
  const result = await sql<{ attempt_ok: number; task_changed: number }>`
    WITH a AS (
      UPDATE attempts SET state = ${state},
        started_at = CASE WHEN ${state} = 'RUNNING' THEN now() ELSE started_at END,
        cold_start_ms = GREATEST(cold_start_ms, ${coldStartMs})
      WHERE id = ${ref.attemptId} AND task_id = ${ref.taskId} AND node_id = ${ref.nodeId}
        AND fencing_token = ${ref.fencingToken} AND ended_at IS NULL
      RETURNING id, task_id
    ), t AS (
      UPDATE tasks SET state = ${state},
        started_at = CASE WHEN ${state} = 'RUNNING' THEN now() ELSE started_at END,
        cold_start_ms = GREATEST(tasks.cold_start_ms, ${coldStartMs})
      FROM a WHERE tasks.id = a.task_id AND tasks.current_attempt_id = a.id AND tasks.state IN (${sql.join(from)})
      RETURNING tasks.id
    )
    SELECT (SELECT count(*) FROM a)::int AS attempt_ok, (SELECT count(*) FROM t)::int AS task_changed`.execute(db);
  const row = result.rows[0];
  return { attemptOk: (row?.attempt_ok ?? 0) > 0, taskChanged: (row?.task_changed ?? 0) > 0 };
}

export interface AttemptOutcome {
  readonly outcome: "SUCCEEDED" | "FAILED" | "CANCELLED";
  readonly output: unknown;
  readonly error: string;
  readonly workerStartedAtMs: number;
  readonly workerEndedAtMs: number;
}

/**
 * Ends an attempt and, if it is still the task's current attempt and the task
 * has not ended, the task with the same outcome. GPU time is the measured
 * execution time times the GPUs the attempt held (computed here, not taken
 * from the worker). Returns false for attemptOk when the attempt is unknown,
 * superseded or already ended, and changes nothing then.
 */
export async function finishAttempt(db: Db, ref: AttemptRef, outcome: AttemptOutcome): Promise<{ attemptOk: boolean; taskChanged: boolean }> {
  const executionMs = Math.max(0, Math.round(outcome.workerEndedAtMs - outcome.workerStartedAtMs));
  const output = outcome.outcome === "SUCCEEDED" ? JSON.stringify(outcome.output ?? null) : null;
  const result = await sql<{ attempt_ok: number; task_changed: number }>`
    WITH a AS (
      UPDATE attempts SET state = ${outcome.outcome}, ended_at = now(), error = ${outcome.error},
        worker_started_at_ms = ${Math.round(outcome.workerStartedAtMs)}, worker_ended_at_ms = ${Math.round(outcome.workerEndedAtMs)},
        gpu_ms = ${executionMs}::bigint * jsonb_array_length(gpu_indices)
      WHERE id = ${ref.attemptId} AND task_id = ${ref.taskId} AND node_id = ${ref.nodeId}
        AND fencing_token = ${ref.fencingToken} AND ended_at IS NULL
      RETURNING id, task_id, gpu_ms
    ), t AS (
      UPDATE tasks SET state = ${outcome.outcome}, ended_at = now(), output = ${output}::jsonb, error = ${outcome.error},
        started_at = COALESCE(tasks.started_at, now()), execution_ms = ${executionMs}, gpu_ms = a.gpu_ms,
        progress = CASE WHEN ${outcome.outcome} = 'SUCCEEDED'
          THEN jsonb_build_object('percent', 100, 'step', COALESCE((tasks.progress->>'totalSteps')::int, 0),
            'totalSteps', COALESCE((tasks.progress->>'totalSteps')::int, 0), 'message', COALESCE(tasks.progress->>'message', ''))
          ELSE tasks.progress END
      FROM a WHERE tasks.id = a.task_id AND tasks.current_attempt_id = a.id AND tasks.state IN ('ASSIGNED', 'STARTING', 'RUNNING')
      RETURNING tasks.id
    )
    SELECT (SELECT count(*) FROM a)::int AS attempt_ok, (SELECT count(*) FROM t)::int AS task_changed`.execute(db);
  const row = result.rows[0];
  return { attemptOk: (row?.attempt_ok ?? 0) > 0, taskChanged: (row?.task_changed ?? 0) > 0 };
}

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
 * Ends the given active attempts as LOST (their node went away) and puts their
 * tasks back in the queue, unless the task already ended. Returns the ids of
 * the tasks that were re-queued.
 */
export async function requeueLostAttempts(db: Db, attemptIds: readonly string[], reason: string): Promise<string[]> {
  if (attemptIds.length === 0) return [];
  const result = await sql<{ id: string }>`
    WITH a AS (
      UPDATE attempts SET state = 'LOST', ended_at = now(), error = ${reason}
      WHERE id IN (${sql.join([...attemptIds])}) AND ended_at IS NULL
      RETURNING id, task_id
    )
    UPDATE tasks SET state = 'QUEUED', current_attempt_id = NULL, node_id = NULL, gpu_indices = '[]'::jsonb,
      assigned_at = NULL, started_at = NULL, progress = NULL
    FROM a WHERE tasks.id = a.task_id AND tasks.current_attempt_id = a.id AND tasks.state IN ('ASSIGNED', 'STARTING', 'RUNNING')
    RETURNING tasks.id`.execute(db);
  return result.rows.map((r) => r.id);
}
