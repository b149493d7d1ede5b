import { sql } from "kysely";
import type { Db } from "./database.js";
import type { GpuRow } from "./schema.js";

export interface NodeRegistration {
  readonly id: string;
  readonly name: string;
  readonly gpus: readonly GpuRow[];
  readonly gpuError: string;
  readonly runtimes: readonly string[];
  readonly maxConcurrentTasks: number;
  readonly workerVersion: string;
  readonly warmAppIds: readonly string[];
  readonly gatewayId: string;
  /** Ed25519 public key (base64url of the raw 32 bytes); set on first join, never changed. */
  readonly publicKey: string;
  /** Paid for the node's GPU time (from its enrollment token; set when it first joins); null: the operator. */
  readonly providerWorkspaceId?: string | null;
}

/** Laplace-smoothed share of a node's attempts that it did not lose. */
export function reliability(counts: { completed_attempts: number; lost_attempts: number }): number {
  return (counts.completed_attempts + 1) / (counts.completed_attempts + counts.lost_attempts + 1);
}

/** A worker joined (or came back): it is online and its stream is held by this gateway. */
export async function registerNode(db: Db, n: NodeRegistration): Promise<void> {
  const columns = {
    name: n.name,
    state: "ONLINE",
    gpus: JSON.stringify(n.gpus),
    gpu_error: n.gpuError,
    runtimes: JSON.stringify(n.runtimes),
    max_concurrent_tasks: n.maxConcurrentTasks,
    worker_version: n.workerVersion,
    warm_app_ids: JSON.stringify(n.warmAppIds),
    gateway_id: n.gatewayId,
    connected_at: sql`now()` as never,
    last_heartbeat_at: sql`now()` as never,
    disconnected_at: null,
  };
  await db
    .insertInto("nodes")
    .values({ id: n.id, ...columns, public_key: n.publicKey, provider_workspace_id: n.providerWorkspaceId ?? null })
    // A node without a key yet (it joined before keys existed) gets this one; a revoked node stays revoked.
    .onConflict((oc) =>
      oc
        .column("id")
        .doUpdateSet({ ...columns, public_key: sql`coalesce(nodes.public_key, excluded.public_key)` as never })
        .where("nodes.revoked_at", "is", null),
    )
    .execute();
}

/** The stream closed. Only the gateway that still holds the node may mark it offline. */
export async function disconnectNode(db: Db, nodeId: string, gatewayId: string): Promise<void> {
  await db
    .updateTable("nodes")
    .set({ state: "OFFLINE", gateway_id: null, disconnected_at: sql`now()` as never })
    .where("id", "=", nodeId)
    .where("gateway_id", "=", gatewayId)
    .execute();
}

/**
 * Marks the given nodes as heard from now (batched: one statement for many
 * nodes). Returns the ids it touched: a node missing from the answer is no
 * longer held by this gateway (it was declared lost meanwhile).
 */
export async function touchNodes(db: Db, nodeIds: readonly string[], gatewayId: string): Promise<Set<string>> {
  if (nodeIds.length === 0) return new Set();
  // Rows are locked in id order: two of these (or one and another multi-row update of nodes) then
  // cannot deadlock, which unordered IN-list updates did with 200 nodes on one replica.
  const rows = await db
    .updateTable("nodes")
    .set({ last_heartbeat_at: sql`now()` as never })
    .where("id", "in", (eb) =>
      eb.selectFrom("nodes").select("id").where("id", "in", [...nodeIds]).where("gateway_id", "=", gatewayId).orderBy("id").forNoKeyUpdate(),
    )
    .returning("id")
    .execute();
  return new Set(rows.map((r) => r.id));
}

export async function setNodeFields(db: Db, nodeId: string, fields: { warmAppIds?: readonly string[]; gpuError?: string; state?: "DRAINING" }): Promise<void> {
  const set = {
    ...(fields.state ? { state: fields.state } : {}),
    ...(fields.warmAppIds ? { warm_app_ids: JSON.stringify(fields.warmAppIds) } : {}),
    ...(fields.gpuError !== undefined ? { gpu_error: fields.gpuError } : {}),
  };
  if (Object.keys(set).length === 0) return;
  await db.updateTable("nodes").set(set).where("id", "=", nodeId).execute();
}

/** What a joining node must prove: its registered key, and whether it was revoked. */
export async function loadNodeIdentity(db: Db, nodeId: string): Promise<{ publicKey: string | null; revokedAt: Date | null; revokeReason: string } | undefined> {
  const row = await db.selectFrom("nodes").select(["public_key", "revoked_at", "revoke_reason"]).where("id", "=", nodeId).executeTakeFirst();
  return row && { publicKey: row.public_key, revokedAt: row.revoked_at, revokeReason: row.revoke_reason };
}

/**
 * Bans a node for good. Returns the attempts it still held (to run elsewhere),
 * or undefined when there is no such node.
 */
export async function revokeNode(db: Db, nodeId: string, reason: string): Promise<{ attemptIds: string[] } | undefined> {
  const row = await db
    .updateTable("nodes")
    .set({ state: "REVOKED", revoked_at: sql`coalesce(revoked_at, now())` as never, revoke_reason: reason, gateway_id: null })
    .where("id", "=", nodeId)
    .returning("id")
    .executeTakeFirst();
  if (!row) return undefined;
  const attempts = await db.selectFrom("attempts").select("id").where("node_id", "=", nodeId).where("ended_at", "is", null).execute();
  return { attemptIds: attempts.map((a) => a.id) };
}
