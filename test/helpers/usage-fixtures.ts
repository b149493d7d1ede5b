import { randomBytes } from "node:crypto";
import { sql } from "kysely";
import type { Db } from "../../control-plane/db/database.js";
import { recordUsage } from "../../control-plane/db/usage.js";
import { newId } from "../../control-plane/ids.js";

export const RTX_3090 = "NVIDIA GeForce RTX 3090";

/** A node with `gpuCount` GPUs of one model, as a worker's hello would register it. */
export async function seedNode(db: Db, options: { model?: string; gpuCount?: number; providerWorkspaceId?: string | null } = {}): Promise<string> {
  const id = newId("node");
  const gpus = Array.from({ length: options.gpuCount ?? 1 }, (_, index) => ({
    index,
    uuid: `GPU-${id}-${index}`,
    model: options.model ?? RTX_3090,
    memoryTotalBytes: 24 * 1024 ** 3,
    driverVersion: "550",
    pciBusId: "",
    migEnabled: false,
    simulated: true,
  }));
  await db
    .insertInto("nodes")
    .values({
      id,
      name: id,
      state: "ONLINE",
      gpus: JSON.stringify(gpus),
      gpu_error: "",
      runtimes: JSON.stringify(["builtin"]),
      max_concurrent_tasks: gpus.length,
      worker_version: "test",
      warm_app_ids: "[]",
      gateway_id: null,
      connected_at: null,
      last_heartbeat_at: null,
      disconnected_at: null,
      provider_workspace_id: options.providerWorkspaceId ?? null,
    })
    .execute();
  return id;
}

export async function seedApp(db: Db, workspaceId: string, options: { name?: string; callFeeNanoUsd?: number; public?: boolean } = {}): Promise<string> {
  const id = newId("app");
  await db
    .insertInto("apps")
    .values({
      id,
      workspace_id: workspaceId,
      name: options.name ?? `app-${randomBytes(4).toString("hex")}`,
      version: 1,
      description: "",
      runtime: JSON.stringify({ kind: "builtin", name: "sleep" }),
      gpu_count: 1,
      gpu_min_memory_bytes: 0,
      gpu_models: "[]",
      env: "{}",
      input_schema: "null",
      input_schema_source: null,
      timeout_ms: 600_000,
      call_fee_nano_usd: options.callFeeNanoUsd ?? 0,
      public: options.public ?? false,
    })
    .execute();
  return id;
}

export interface EndedAttemptsSpec {
  readonly workspaceId: string;
  readonly appId: string;
  readonly nodeId: string;
  readonly count: number;
  /** When the first attempt started (control plane's clock). */
  readonly firstStart: Date;
  /** Start of attempt i = firstStart + i × spacingMs. */
  readonly spacingMs: number;
  readonly executionMs: number;
  /** SUCCEEDED, FAILED, CANCELLED, TIMED_OUT, LOST or RELEASED. */
  readonly outcome?: string;
  /** How much longer the worker says it ran than the control plane saw; null: no worker report. */
  readonly workerExtraMs?: number | null;
  /** GPU indices each attempt holds; default [0]. */
  readonly gpuIndices?: readonly number[];
}

/**
 * Ended tasks and attempts with chosen times, written in one statement each
 * (generate_series), with no usage recorded yet. Returns the attempt ids in start order.
 */
export async function seedEndedAttempts(db: Db, spec: EndedAttemptsSpec): Promise<string[]> {
  const tag = randomBytes(5).toString("hex");
  const outcome = spec.outcome ?? "SUCCEEDED";
  const taskState = outcome === "LOST" || outcome === "RELEASED" ? "FAILED" : outcome;
  const workerExtra = spec.workerExtraMs === undefined ? 0 : spec.workerExtraMs;
  const start = sql`(${spec.firstStart.toISOString()}::timestamptz + make_interval(secs => i * ${spec.spacingMs / 1000}))`;
  const end = sql`(${start} + make_interval(secs => ${spec.executionMs / 1000}))`;
  await sql`
    INSERT INTO tasks (id, workspace_id, app_id, app_version, state, input, timeout_ms, created_at, started_at, ended_at, attempt_count)
    SELECT 'tsk_' || ${tag} || '_' || i, ${spec.workspaceId}, ${spec.appId}, 1, ${taskState}, '{}', 600000, ${start}, ${start}, ${end}, 1
    FROM generate_series(0, ${spec.count - 1}) i`.execute(db);
  const rows = await sql<{ id: string }>`
    INSERT INTO attempts (id, task_id, workspace_id, app_id, node_id, fencing_token, gpu_indices, state, created_at, started_at, ended_at,
      worker_started_at_ms, worker_ended_at_ms)
    SELECT 'att_' || ${tag} || '_' || lpad(i::text, 9, '0'), 'tsk_' || ${tag} || '_' || i, ${spec.workspaceId}, ${spec.appId}, ${spec.nodeId},
      nextval('attempt_fencing_tokens'), ${JSON.stringify(spec.gpuIndices ?? [0])}::jsonb, ${outcome}, ${start}, ${start}, ${end},
      CASE WHEN ${workerExtra}::bigint IS NULL THEN NULL ELSE (EXTRACT(EPOCH FROM ${start}) * 1000)::bigint END,
      CASE WHEN ${workerExtra}::bigint IS NULL THEN NULL ELSE (EXTRACT(EPOCH FROM ${end}) * 1000)::bigint + ${workerExtra ?? 0} END
    FROM generate_series(0, ${spec.count - 1}) i
    ORDER BY i
    RETURNING id`.execute(db);
  return rows.rows.map((r) => r.id);
}

/** Records usage in batches, as the finish paths do. */
export async function recordInBatches(db: Db, attemptIds: readonly string[], batch = 1000): Promise<number> {
  let written = 0;
  for (let i = 0; i < attemptIds.length; i += batch) {
    written += (await db.transaction().execute((tx) => recordUsage(tx, attemptIds.slice(i, i + batch)))).length;
  }
  return written;
}
