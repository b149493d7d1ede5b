import { sql } from "kysely";
import { NgpuError, notFound } from "../errors.js";
import { newId } from "../ids.js";
import type { Db } from "./database.js";
import type { AppRow, PoolPolicyRow, RuntimeRow } from "./schema.js";

/** An app's definition as validated by the API. */
export interface AppDefinition {
  readonly name: string;
  readonly description: string;
  readonly runtime: RuntimeRow;
  readonly gpuCount: number;
  readonly gpuMinMemoryBytes: number;
  readonly gpuModels: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  /** Given by the deployer; undefined leaves any schema learnt from the app in place. */
  readonly inputSchema: Record<string, unknown> | undefined;
  readonly timeoutMs: number;
  readonly maxAttempts: number;
  /** 0: queued tasks never expire. */
  readonly queueTtlMs: number;
  /** Null: no pool. Changing only the pool does not make a new version (the instance is the same). */
  readonly pool?: PoolPolicyRow | null;
}

const APP_ID = /^app_[0-9a-z]{26}$/;

/** SQL NULL for no pool (not JSON null: the scheduler tests `pool_policy IS NULL`). */
const poolColumn = (def: AppDefinition): string | null => (def.pool ? JSON.stringify(def.pool) : null);

/** Finds an app of the workspace by id or by name. */
export async function findApp(db: Db, workspaceId: string, idOrName: string): Promise<AppRow> {
  const row = await db
    .selectFrom("apps")
    .selectAll()
    .where("workspace_id", "=", workspaceId)
    .where(APP_ID.test(idOrName) ? "id" : "name", "=", idOrName)
    .executeTakeFirst();
  if (!row) throw notFound("app", idOrName);
  return row;
}

/**
 * Finds an app the workspace may call: its own (id or name), or a published one
 * of any workspace, by id or as "<workspace id or name>/<app name>". Nothing
 * about the author's account is checked: a published app serves whoever pays.
 */
export async function findCallableApp(db: Db, workspaceId: string, ref: string): Promise<AppRow> {
  const slash = ref.indexOf("/");
  if (slash < 0 && !APP_ID.test(ref)) return findApp(db, workspaceId, ref);
  let query = db
    .selectFrom("apps as a")
    .innerJoin("workspaces as w", "w.id", "a.workspace_id")
    .selectAll("a")
    .where((eb) => eb.or([eb("a.workspace_id", "=", workspaceId), eb("a.public", "=", true)]))
    .limit(2);
  if (slash < 0) query = query.where("a.id", "=", ref);
  else {
    const owner = ref.slice(0, slash);
    query = query.where("a.name", "=", ref.slice(slash + 1)).where((eb) => eb.or([eb("w.id", "=", owner), eb("w.name", "=", owner)]));
  }
  const rows = await query.execute();
  if (rows.length > 1) throw new NgpuError("FAILED_PRECONDITION", `app ${JSON.stringify(ref)} is ambiguous: several workspaces have that name; use "<workspace id>/<app name>" or the app id`);
  if (!rows[0]) throw notFound("app", ref);
  return rows[0];
}

/** Publishes or unpublishes an app, and sets its per-call fee; neither makes a new version. */
export async function setAppBilling(db: Db, appId: string, billing: { public?: boolean; callFeeNanoUsd?: number }): Promise<AppRow> {
  return db
    .updateTable("apps")
    .set({
      ...(billing.public !== undefined ? { public: billing.public } : {}),
      ...(billing.callFeeNanoUsd !== undefined ? { call_fee_nano_usd: billing.callFeeNanoUsd } : {}),
      updated_at: sql`now()` as never,
    })
    .where("id", "=", appId)
    .returningAll()
    .executeTakeFirstOrThrow();
}

function sameDefinition(row: AppRow, def: AppDefinition): boolean {
  return (
    JSON.stringify(row.runtime) === JSON.stringify(def.runtime) &&
    row.description === def.description &&
    row.gpu_count === def.gpuCount &&
    row.gpu_min_memory_bytes === def.gpuMinMemoryBytes &&
    JSON.stringify(row.gpu_models) === JSON.stringify(def.gpuModels) &&
    JSON.stringify(row.env) === JSON.stringify(def.env) &&
    row.timeout_ms === def.timeoutMs &&
    row.max_attempts === def.maxAttempts &&
    row.queue_ttl_ms === def.queueTtlMs &&
    (def.inputSchema === undefined || JSON.stringify(row.input_schema) === JSON.stringify(def.inputSchema))
  );
}

/**
 * Creates the app, or makes a new version of the one with the same name.
 * Deploying an identical definition changes nothing.
 */
export async function deployApp(db: Db, workspaceId: string, def: AppDefinition): Promise<{ app: AppRow; created: boolean }> {
  return db.transaction().execute(async (tx) => {
    const existing = await tx
      .selectFrom("apps")
      .selectAll()
      .where("workspace_id", "=", workspaceId)
      .where("name", "=", def.name)
      .forUpdate()
      .executeTakeFirst();
    const columns = {
      description: def.description,
      runtime: JSON.stringify(def.runtime),
      gpu_count: def.gpuCount,
      gpu_min_memory_bytes: def.gpuMinMemoryBytes,
      gpu_models: JSON.stringify(def.gpuModels),
      env: JSON.stringify(def.env),
      timeout_ms: def.timeoutMs,
      max_attempts: def.maxAttempts,
      queue_ttl_ms: def.queueTtlMs,
    };
    if (!existing) {
      const app = await tx
        .insertInto("apps")
        .values({
          id: newId("app"),
          workspace_id: workspaceId,
          name: def.name,
          version: 1,
          ...columns,
          input_schema: JSON.stringify(def.inputSchema ?? null),
          input_schema_source: def.inputSchema ? "user" : null,
          pool_policy: poolColumn(def),
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      return { app, created: true };
    }
    if (sameDefinition(existing, def)) {
      if (JSON.stringify(existing.pool_policy) === JSON.stringify(def.pool ?? null)) return { app: existing, created: false };
      const app = await tx
        .updateTable("apps")
        .set({ pool_policy: poolColumn(def), updated_at: sql`now()` as never })
        .where("id", "=", existing.id)
        .returningAll()
        .executeTakeFirstOrThrow();
      return { app, created: false };
    }
    const schema = def.inputSchema
      ? { input_schema: JSON.stringify(def.inputSchema), input_schema_source: "user" }
      : // A schema learnt from the old version may not fit the new one: learn it again.
        existing.input_schema_source === "app"
        ? { input_schema: JSON.stringify(null), input_schema_source: null }
        : {};
    const app = await tx
      .updateTable("apps")
      .set({ ...columns, ...schema, pool_policy: poolColumn(def), version: existing.version + 1, updated_at: sql`now()` as never })
      .where("id", "=", existing.id)
      .returningAll()
      .executeTakeFirstOrThrow();
    return { app, created: true };
  });
}

/** Records the input schema an app instance published, unless the deployer gave one. */
export async function learnInputSchema(db: Db, appId: string, version: number, schema: Record<string, unknown>): Promise<void> {
  await db
    .updateTable("apps")
    .set({ input_schema: JSON.stringify(schema), input_schema_source: "app" })
    .where("id", "=", appId)
    .where("version", "=", version)
    .where((eb) => eb.or([eb("input_schema_source", "is", null), eb("input_schema_source", "=", "app")]))
    .execute();
}

/** `onlyIds`: what an INVOKE or WIDGET key may see (undefined: all). */
export async function listApps(db: Db, workspaceId: string, limit: number, afterName: string | undefined, onlyIds?: readonly string[]): Promise<AppRow[]> {
  let query = db.selectFrom("apps").selectAll().where("workspace_id", "=", workspaceId).orderBy("name").limit(limit);
  if (onlyIds) query = onlyIds.length > 0 ? query.where("id", "in", [...onlyIds]) : query.where(sql<boolean>`false`);
  if (afterName !== undefined) query = query.where("name", ">", afterName);
  return query.execute();
}
