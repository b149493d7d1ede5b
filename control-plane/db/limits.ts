import { sql } from "kysely";
import { NgpuError } from "../errors.js";
import type { Db } from "./database.js";

/** A workspace's limits; 0 means none. */
export interface WorkspaceLimits {
  readonly maxConcurrentTasks: number;
  readonly maxSubmitsPerMinute: number;
  readonly monthlySpendCapNanoUsd: number;
}

export async function getLimits(db: Db, workspaceId: string): Promise<WorkspaceLimits> {
  const row = await db
    .selectFrom("workspaces")
    .select(["max_concurrent_tasks", "max_submits_per_minute", "monthly_spend_cap_nano_usd"])
    .where("id", "=", workspaceId)
    .executeTakeFirstOrThrow();
  return limitsFromRow(row);
}

/** A workspace row's limit columns as limits. */
export function limitsFromRow(row: { max_concurrent_tasks: number; max_submits_per_minute: number; monthly_spend_cap_nano_usd: number }): WorkspaceLimits {
  return { maxConcurrentTasks: row.max_concurrent_tasks, maxSubmitsPerMinute: row.max_submits_per_minute, monthlySpendCapNanoUsd: row.monthly_spend_cap_nano_usd };
}

export async function setLimits(db: Db, workspaceId: string, limits: WorkspaceLimits): Promise<void> {
  await db
    .updateTable("workspaces")
    .set({ max_concurrent_tasks: limits.maxConcurrentTasks, max_submits_per_minute: limits.maxSubmitsPerMinute, monthly_spend_cap_nano_usd: limits.monthlySpendCapNanoUsd })
    .where("id", "=", workspaceId)
    .execute();
}

/** Billed to the workspace this calendar month (UTC), from the usage rollups. */
export async function monthSpendNanoUsd(db: Db, workspaceId: string): Promise<number> {
  const row = await db
    .selectFrom("usage_rollups")
    .select(sql<number>`coalesce(sum(cost_nano_usd + fee_nano_usd), 0)`.as("spent"))
    .where("workspace_id", "=", workspaceId)
    .where("bucket", ">=", sql<Date>`date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'`)
    .executeTakeFirst();
  return Number(row?.spent ?? 0);
}

export async function unfinishedTasks(db: Db, workspaceId: string): Promise<number> {
  const row = await db
    .selectFrom("tasks")
    .select((eb) => eb.fn.countAll<number>().as("n"))
    .where("workspace_id", "=", workspaceId)
    .where("state", "in", ["QUEUED", "ASSIGNED", "STARTING", "RUNNING"])
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

function usd(nano: number): string {
  return `$${(nano / 1e9).toFixed(nano % 1e7 === 0 ? 2 : 9)}`;
}

export function hasLimits(limits: WorkspaceLimits): boolean {
  return limits.maxConcurrentTasks > 0 || limits.maxSubmitsPerMinute > 0 || limits.monthlySpendCapNanoUsd > 0;
}

/**
 * Refuses a new task with RESOURCE_EXHAUSTED, saying which limit, when the
 * workspace is at one. Call it in the transaction that inserts the task: it
 * takes the workspace's submit lock (held to commit), so concurrent submits
 * of a limited workspace take turns and cannot pass a limit together.
 */
export async function checkSubmitLimits(db: Db, workspaceId: string, limits: WorkspaceLimits): Promise<void> {
  await sql`SELECT pg_advisory_xact_lock(hashtext(${`ngpu.submit.${workspaceId}`}))`.execute(db);
  if (limits.maxSubmitsPerMinute > 0) {
    const row = await db
      .selectFrom("tasks")
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .where("workspace_id", "=", workspaceId)
      .where("created_at", ">", sql<Date>`now() - interval '60 seconds'`)
      .executeTakeFirstOrThrow();
    if (Number(row.n) >= limits.maxSubmitsPerMinute) {
      throw new NgpuError("RESOURCE_EXHAUSTED", `submit rate limit: ${limits.maxSubmitsPerMinute} tasks per minute for this workspace; retry in a few seconds`);
    }
  }
  if (limits.maxConcurrentTasks > 0) {
    const n = await unfinishedTasks(db, workspaceId);
    if (n >= limits.maxConcurrentTasks) {
      throw new NgpuError("RESOURCE_EXHAUSTED", `concurrency limit: ${n} unfinished tasks, the workspace's limit is ${limits.maxConcurrentTasks}; wait for some to end`);
    }
  }
  if (limits.monthlySpendCapNanoUsd > 0) {
    const spent = await monthSpendNanoUsd(db, workspaceId);
    if (spent >= limits.monthlySpendCapNanoUsd) {
      throw new NgpuError(
        "RESOURCE_EXHAUSTED",
        `monthly spend cap reached: ${usd(spent)} spent this month (UTC) of a ${usd(limits.monthlySpendCapNanoUsd)} cap; no new tasks until the cap is raised or the month ends`,
      );
    }
  }
}
