import { createHash, timingSafeEqual } from "node:crypto";
import { sql } from "kysely";
import { NgpuError } from "../errors.js";
import { newId, newSecret } from "../ids.js";
import type { Db } from "./database.js";
import type { ApiKeyTable } from "./schema.js";
import type { Selectable } from "kysely";
import { limitsFromRow, type WorkspaceLimits } from "./limits.js";

/**
 * API keys and enrollment tokens are "<id>.<secret>". Only sha256(secret) is
 * stored; the whole string is shown once, when created.
 */
function hash(secret: string): string {
  return createHash("sha256").update(secret).digest("hex");
}

function split(credential: string): { id: string; secret: string } | undefined {
  const dot = credential.indexOf(".");
  if (dot <= 0 || dot === credential.length - 1 || credential.length > 200) return undefined;
  return { id: credential.slice(0, dot), secret: credential.slice(dot + 1) };
}

function matches(secret: string, storedHash: string): boolean {
  const a = Buffer.from(hash(secret), "hex");
  const b = Buffer.from(storedHash, "hex");
  return a.length === b.length && timingSafeEqual(a, b);
}

export async function createWorkspace(db: Db, name: string, options: { operator?: boolean } = {}): Promise<{ id: string }> {
  const id = newId("ws");
  await db.insertInto("workspaces").values({ id, name, operator: options.operator ?? false }).execute();
  return { id };
}

/** What a key may do; see KeyScope in key.proto. */
export type KeyScope = "FULL" | "INVOKE" | "READ_ONLY" | "WIDGET";

export interface NewApiKey {
  readonly name?: string;
  /** Default FULL. */
  readonly scope?: KeyScope;
  /** For INVOKE and WIDGET: the apps it may use, as named when created (shown back to people). */
  readonly appNames?: readonly string[];
  /** The ids of those apps: what calls are checked against. */
  readonly appIds?: readonly string[];
  /** Unset: never expires. */
  readonly expiresAt?: Date;
}

export type ApiKeyRow = Selectable<ApiKeyTable>;

/** Returns the key to hand to its user; it cannot be read back later. */
export async function createApiKey(db: Db, workspaceId: string, init: NewApiKey | string = {}): Promise<{ id: string; key: string; row: ApiKeyRow }> {
  const options = typeof init === "string" ? { name: init } : init;
  const id = newId("key");
  const secret = newSecret();
  const row = await db
    .insertInto("api_keys")
    .values({
      id,
      workspace_id: workspaceId,
      name: options.name ?? "",
      secret_hash: hash(secret),
      last_used_at: null,
      revoked_at: null,
      scope: options.scope ?? "FULL",
      app_names: JSON.stringify(options.appNames ?? []),
      app_ids: JSON.stringify(options.appIds ?? []),
      expires_at: options.expiresAt ?? null,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  return { id, key: `${id}.${secret}`, row };
}

export async function listApiKeys(db: Db, workspaceId: string, includeInactive: boolean): Promise<ApiKeyRow[]> {
  let query = db.selectFrom("api_keys").selectAll().where("workspace_id", "=", workspaceId).orderBy("created_at").orderBy("id").limit(1000);
  if (!includeInactive) query = query.where("revoked_at", "is", null).where((eb) => eb.or([eb("expires_at", "is", null), eb("expires_at", ">", sql<Date>`now()`)]));
  return query.execute();
}

/** Revokes a key of the workspace; revoking twice keeps the first time. Undefined when there is no such key. */
export async function revokeApiKey(db: Db, workspaceId: string, keyId: string): Promise<ApiKeyRow | undefined> {
  await db.updateTable("api_keys").set({ revoked_at: sql`now()` as never }).where("id", "=", keyId).where("workspace_id", "=", workspaceId).where("revoked_at", "is", null).execute();
  return db.selectFrom("api_keys").selectAll().where("id", "=", keyId).where("workspace_id", "=", workspaceId).executeTakeFirst();
}

export interface Principal {
  readonly workspaceId: string;
  readonly keyId: string;
  /** The key belongs to the network's operator workspace. */
  readonly operator: boolean;
  readonly scope: KeyScope;
  /** For INVOKE and WIDGET keys: the apps they may use, as named when created (for messages). */
  readonly appNames: readonly string[];
  /** The ids of those apps: what calls are checked against. */
  readonly appIds: readonly string[];
  /** The workspace's limits, read with the key so a submit needs no query of its own for them. */
  readonly limits: WorkspaceLimits;
}

/**
 * The workspace and scope a key acts for. Throws UNAUTHENTICATED saying why
 * when the key is unknown, wrong, revoked or expired. Read from the database on
 * every call (one primary-key lookup) so that a revocation holds at once on
 * every replica.
 */
export async function verifyApiKey(db: Db, key: string): Promise<Principal> {
  const parts = split(key);
  if (!parts) throw new NgpuError("UNAUTHENTICATED", "invalid or revoked API key");
  const row = await db
    .selectFrom("api_keys")
    .innerJoin("workspaces", "workspaces.id", "api_keys.workspace_id")
    .select([
      "api_keys.workspace_id",
      "api_keys.secret_hash",
      "api_keys.revoked_at",
      "api_keys.expires_at",
      "api_keys.last_used_at",
      "api_keys.scope",
      "api_keys.app_names",
      "api_keys.app_ids",
      "workspaces.operator",
      "workspaces.max_concurrent_tasks",
      "workspaces.max_submits_per_minute",
      "workspaces.monthly_spend_cap_nano_usd",
      sql<Date>`now()`.as("now"),
    ])
    .where("api_keys.id", "=", parts.id)
    .executeTakeFirst();
  if (!row || !matches(parts.secret, row.secret_hash)) throw new NgpuError("UNAUTHENTICATED", "invalid or revoked API key");
  if (row.revoked_at !== null) throw new NgpuError("UNAUTHENTICATED", `API key ${parts.id} was revoked`);
  if (row.expires_at !== null && row.expires_at.getTime() <= row.now.getTime()) {
    throw new NgpuError("UNAUTHENTICATED", `API key ${parts.id} expired at ${row.expires_at.toISOString()}`);
  }
  // Last-used is informational: refresh it at most once a minute to keep calls cheap.
  if (!row.last_used_at || row.now.getTime() - row.last_used_at.getTime() > 60_000) {
    await db.updateTable("api_keys").set({ last_used_at: sql`now()` as never }).where("id", "=", parts.id).execute();
  }
  return {
    workspaceId: row.workspace_id,
    keyId: parts.id,
    operator: row.operator,
    scope: row.scope as KeyScope,
    appNames: row.app_names,
    appIds: row.app_ids,
    limits: limitsFromRow(row),
  };
}

export interface NewEnrollmentToken {
  readonly name?: string;
  /** Unset: never expires. */
  readonly expiresAt?: Date;
  /** How many new nodes may join with it. Default 1. */
  readonly maxUses?: number;
  /** Paid for the GPU time of the nodes that enroll with it; unset: the network's operator. */
  readonly providerWorkspaceId?: string;
}

export async function createEnrollmentToken(db: Db, init: NewEnrollmentToken | string = {}): Promise<{ id: string; token: string; expiresAt: Date | null }> {
  const options = typeof init === "string" ? { name: init } : init;
  const id = newId("enr");
  const secret = newSecret();
  await db
    .insertInto("enrollment_tokens")
    .values({ id, name: options.name ?? "", secret_hash: hash(secret), revoked_at: null, expires_at: options.expiresAt ?? null, max_uses: options.maxUses ?? 1, provider_workspace_id: options.providerWorkspaceId ?? null })
    .execute();
  return { id, token: `${id}.${secret}`, expiresAt: options.expiresAt ?? null };
}

/** Why a token cannot admit a new node, or undefined when it can (without using it up). */
export async function checkEnrollmentToken(db: Db, token: string): Promise<string | undefined> {
  const parts = split(token);
  if (!parts) return "unknown or revoked enrollment token";
  const row = await db
    .selectFrom("enrollment_tokens")
    .select(["secret_hash", "revoked_at", "expires_at", "uses", "max_uses", sql<Date>`now()`.as("now")])
    .where("id", "=", parts.id)
    .executeTakeFirst();
  if (!row || row.revoked_at !== null || !matches(parts.secret, row.secret_hash)) return "unknown or revoked enrollment token";
  if (row.expires_at !== null && row.expires_at.getTime() <= row.now.getTime()) return `enrollment token expired at ${row.expires_at.toISOString()}`;
  if (row.uses >= row.max_uses) return "enrollment token was already used (tokens admit one new node; ask the operator for another)";
  return undefined;
}

/**
 * Uses up one join of a token, atomically (two workers racing for a single-use
 * token: one wins). Returns why it failed, or undefined on success.
 */
export async function consumeEnrollmentToken(db: Db, token: string): Promise<string | undefined> {
  const problem = await checkEnrollmentToken(db, token);
  if (problem) return problem;
  const parts = split(token)!;
  const used = await db
    .updateTable("enrollment_tokens")
    .set((eb) => ({ uses: eb("uses", "+", 1) }))
    .where("id", "=", parts.id)
    .where("revoked_at", "is", null)
    .where((eb) => eb("uses", "<", eb.ref("max_uses")))
    .where((eb) => eb.or([eb("expires_at", "is", null), eb("expires_at", ">", sql<Date>`now()`)]))
    .executeTakeFirst();
  return used.numUpdatedRows > 0n ? undefined : "enrollment token was already used (tokens admit one new node; ask the operator for another)";
}

/** The provider a (verified) enrollment token enrolls its nodes for; null: the operator. */
export async function enrollmentProvider(db: Db, token: string): Promise<string | null> {
  const parts = split(token);
  if (!parts) return null;
  const row = await db.selectFrom("enrollment_tokens").select("provider_workspace_id").where("id", "=", parts.id).executeTakeFirst();
  return row?.provider_workspace_id ?? null;
}
