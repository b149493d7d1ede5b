import { createHash, timingSafeEqual } from "node:crypto";
import { sql } from "kysely";
import { newId, newSecret } from "../ids.js";
import type { Db } from "./database.js";

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

/** Returns the key to hand to its user; it cannot be read back later. */
export async function createApiKey(db: Db, workspaceId: string, name = ""): Promise<{ id: string; key: string }> {
  const id = newId("key");
  const secret = newSecret();
  await db.insertInto("api_keys").values({ id, workspace_id: workspaceId, name, secret_hash: hash(secret), last_used_at: null, revoked_at: null }).execute();
  return { id, key: `${id}.${secret}` };
}

export interface Principal {
  readonly workspaceId: string;
  readonly keyId: string;
  /** The key belongs to the network's operator workspace. */
  readonly operator: boolean;
}

/** The workspace a key acts for, or undefined when the key is unknown, wrong or revoked. */
export async function verifyApiKey(db: Db, key: string): Promise<Principal | undefined> {
  const parts = split(key);
  if (!parts) return undefined;
  const row = await db
    .selectFrom("api_keys")
    .innerJoin("workspaces", "workspaces.id", "api_keys.workspace_id")
    .select(["api_keys.workspace_id", "api_keys.secret_hash", "api_keys.revoked_at", "api_keys.last_used_at", "workspaces.operator"])
    .where("api_keys.id", "=", parts.id)
    .executeTakeFirst();
  if (!row || row.revoked_at !== null || !matches(parts.secret, row.secret_hash)) return undefined;
  // Last-used is informational: refresh it at most once a minute to keep calls cheap.
  if (!row.last_used_at || Date.now() - row.last_used_at.getTime() > 60_000) {
    await db.updateTable("api_keys").set({ last_used_at: sql`now()` as never }).where("id", "=", parts.id).execute();
  }
  return { workspaceId: row.workspace_id, keyId: parts.id, operator: row.operator };
}

export async function createEnrollmentToken(db: Db, name = ""): Promise<{ id: string; token: string }> {
  const id = newId("enr");
  const secret = newSecret();
  await db.insertInto("enrollment_tokens").values({ id, name, secret_hash: hash(secret), revoked_at: null }).execute();
  return { id, token: `${id}.${secret}` };
}

export async function verifyEnrollmentToken(db: Db, token: string): Promise<boolean> {
  const parts = split(token);
  if (!parts) return false;
  const row = await db.selectFrom("enrollment_tokens").select(["secret_hash", "revoked_at"]).where("id", "=", parts.id).executeTakeFirst();
  return !!row && row.revoked_at === null && matches(parts.secret, row.secret_hash);
}
