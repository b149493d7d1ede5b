import { sql } from "kysely";
import { notFound } from "../errors.js";
import { newId } from "../ids.js";
import type { Db } from "./database.js";
import type { AppRow, RuntimeRow } from "./schema.js";

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
}

const APP_ID = /^app_[0-9a-z]{26}$/;

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
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      return { app, created: true };
    }
    if (sameDefinition(existing, def)) return { app: existing, created: false };
    const schema = def.inputSchema
      ? { input_schema: JSON.stringify(def.inputSchema), input_schema_source: "user" }
      : // A schema learnt from the old version may not fit the new one: learn it again.
        existing.input_schema_source === "app"
        ? { input_schema: JSON.stringify(null), input_schema_source: null }
        : {};
    const app = await tx
      .updateTable("apps")
      .set({ ...columns, ...schema, version: existing.version + 1, updated_at: sql`now()` as never })
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

/** `onlyNames`: what an INVOKE key may see (undefined: all). */
export async function listApps(db: Db, workspaceId: string, limit: number, afterName: string | undefined, onlyNames?: readonly string[]): Promise<AppRow[]> {
  let query = db.selectFrom("apps").selectAll().where("workspace_id", "=", workspaceId).orderBy("name").limit(limit);
  if (onlyNames) query = onlyNames.length > 0 ? query.where("name", "in", [...onlyNames]) : query.where(sql<boolean>`false`);
  if (afterName !== undefined) query = query.where("name", ">", afterName);
  return query.execute();
}
