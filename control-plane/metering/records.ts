import type { Db } from "../db/database.js";
import type { UsageRecordRow } from "../db/schema.js";

export interface RecordFilter {
  readonly workspaceId: string;
  /** Records that ended in [start, end). */
  readonly start: Date;
  readonly end: Date;
  readonly appId?: string;
  readonly nodeId?: string;
  readonly gpuModel?: string;
  readonly outcomes?: readonly string[];
  readonly taskId?: string;
}

/** Where a page starts: after this record in (ended_at_ms, attempt_id) order. */
export interface RecordCursor {
  readonly endedAtMs: number;
  readonly attemptId: string;
}

/** The workspace's usage records, oldest first, in (end time, attempt) order. */
export async function listUsageRecords(db: Db, f: RecordFilter, limit: number, after?: RecordCursor): Promise<UsageRecordRow[]> {
  let query = db
    .selectFrom("usage_records")
    .selectAll()
    .where("workspace_id", "=", f.workspaceId)
    .where("ended_at_ms", ">=", f.start.getTime())
    .where("ended_at_ms", "<", f.end.getTime())
    .orderBy("ended_at_ms")
    .orderBy("attempt_id")
    .limit(limit);
  if (f.appId) query = query.where("app_id", "=", f.appId);
  if (f.nodeId) query = query.where("node_id", "=", f.nodeId);
  if (f.gpuModel) query = query.where("gpu_model", "=", f.gpuModel);
  if (f.outcomes && f.outcomes.length > 0) query = query.where("outcome", "in", [...f.outcomes]);
  if (f.taskId) query = query.where("task_id", "=", f.taskId);
  if (after) {
    query = query.where((eb) =>
      eb.or([eb("ended_at_ms", ">", after.endedAtMs), eb.and([eb("ended_at_ms", "=", after.endedAtMs), eb("attempt_id", ">", after.attemptId)])]),
    );
  }
  return query.execute();
}

/** Every record of the filter, a page at a time (for exports of any size in bounded memory). */
export async function* eachUsageRecordPage(db: Db, f: RecordFilter, pageSize = 1000): AsyncGenerator<UsageRecordRow[]> {
  let after: RecordCursor | undefined;
  for (;;) {
    const page = await listUsageRecords(db, f, pageSize, after);
    if (page.length > 0) yield page;
    const last = page[page.length - 1];
    if (!last || page.length < pageSize) return;
    after = { endedAtMs: last.ended_at_ms, attemptId: last.attempt_id };
  }
}

/** One task's records, oldest first (the task must be the workspace's: checked by the caller). */
export async function taskUsageRecords(db: Db, taskId: string): Promise<UsageRecordRow[]> {
  return db.selectFrom("usage_records").selectAll().where("task_id", "=", taskId).orderBy("ended_at_ms").orderBy("attempt_id").execute();
}

export const CSV_COLUMNS = [
  "attempt_id",
  "task_id",
  "workspace_id",
  "app_id",
  "node_id",
  "gpu_model",
  "gpu_count",
  "outcome",
  "start_time_ms",
  "end_time_ms",
  "execution_ms",
  "gpu_ms",
  "worker_execution_ms",
  "control_plane_execution_ms",
  "disagreement_ms",
  "price_nano_usd_per_gpu_second",
  "cost_nano_usd",
  "fee_nano_usd",
  "total_nano_usd",
] as const;

/** RFC 4180 quoting, only where needed. */
function csvField(value: string | number | null): string {
  if (value === null) return "";
  const s = String(value);
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

export function csvHeader(): string {
  return `${CSV_COLUMNS.join(",")}\r\n`;
}

export function csvLine(r: UsageRecordRow): string {
  const values: Array<string | number | null> = [
    r.attempt_id,
    r.task_id,
    r.workspace_id,
    r.app_id,
    r.node_id,
    r.gpu_model,
    r.gpu_count,
    r.outcome,
    r.started_at_ms,
    r.ended_at_ms,
    r.execution_ms,
    r.gpu_ms,
    r.worker_execution_ms,
    r.control_plane_execution_ms,
    r.disagreement_ms,
    r.price_nano_usd_per_gpu_second,
    r.cost_nano_usd,
    r.fee_nano_usd,
    r.cost_nano_usd + r.fee_nano_usd,
  ];
  return `${values.map(csvField).join(",")}\r\n`;
}
