import { createPrivateKey, createPublicKey, generateKeyPairSync, sign } from "node:crypto";
import { createHash } from "node:crypto";
import { sql } from "kysely";
import type { Canonical } from "../../receipts/canonical-json.js";
import { canonicalJson } from "../../receipts/canonical-json.js";
import type { ReceiptBody } from "../../receipts/verify-receipts.js";
import type { Db } from "../db/database.js";
import type { UsageClaim } from "../../receipts/usage-claim.js";
import type { Logger } from "../log.js";

/** The control plane's receipt-signing key (one for all replicas, kept in the database). */
export interface ReceiptSigner {
  readonly keyId: string;
  /** Raw Ed25519 public key, base64url. */
  readonly publicKey: string;
  sign(body: string): Buffer;
}

const KEY_ID = "rk_1";

/** Loads the receipt key, making it on the first start of the first replica (the others then read it). */
export async function loadReceiptSigner(db: Db): Promise<ReceiptSigner> {
  const { privateKey } = generateKeyPairSync("ed25519");
  const publicKey = createPublicKey(privateKey).export({ format: "jwk" }).x ?? "";
  await db
    .insertInto("receipt_keys")
    .values({ id: KEY_ID, public_key: publicKey, private_key_pem: privateKey.export({ type: "pkcs8", format: "pem" }).toString() })
    .onConflict((oc) => oc.column("id").doNothing())
    .execute();
  const row = await db.selectFrom("receipt_keys").selectAll().where("id", "=", KEY_ID).executeTakeFirstOrThrow();
  const key = createPrivateKey(row.private_key_pem);
  return { keyId: row.id, publicKey: row.public_key, sign: (body) => sign(null, Buffer.from(body, "utf8"), key) };
}

/** A usage record as receipts carry it: every column but the time it was written. */
export function recordForReceipt(row: Record<string, unknown>): { [column: string]: Canonical } {
  const out: { [column: string]: Canonical } = {};
  for (const [k, v] of Object.entries(row)) {
    if (k === "recorded_at") continue;
    out[k] = v instanceof Date ? v.toISOString() : (v as Canonical);
  }
  return out;
}

export interface ReceiptWriter {
  /** Writes receipts for what is queued now; returns how many. */
  runOnce(): Promise<number>;
  shutdown(): Promise<void>;
}

/**
 * Issues receipts for new usage records, off the billing path: every replica
 * runs it, one at a time (an advisory lock), so each workspace's chain grows
 * in one order. A receipt: the record as billed, the worker's signed claim,
 * the previous receipt's hash; hashed and signed with the control plane key.
 */
export function startReceiptWriter(options: { db: Db; logger: Logger; signer: ReceiptSigner; intervalMs?: number }): ReceiptWriter {
  const { db, signer } = options;
  const log = options.logger.child({ component: "receipts" });
  let running: Promise<number> | undefined;

  async function write(): Promise<number> {
    return db.transaction().execute(async (tx) => {
      const locked = await sql<{ ok: boolean }>`SELECT pg_try_advisory_xact_lock(hashtext('ngpu.receipts')) AS ok`.execute(tx);
      if (!locked.rows[0]?.ok) return 0;
      const queued = await tx.selectFrom("receipt_queue").select("attempt_id").orderBy("queued_at").orderBy("attempt_id").limit(500).execute();
      if (queued.length === 0) return 0;
      const ids = queued.map((q) => q.attempt_id);
      const records = await tx.selectFrom("usage_records").selectAll().where("attempt_id", "in", ids).orderBy("recorded_at").orderBy("attempt_id").execute();
      const claims = new Map((await tx.selectFrom("attempt_claims").selectAll().where("attempt_id", "in", ids).execute()).map((c) => [c.attempt_id, c]));
      const workspaces = [...new Set(records.map((r) => r.workspace_id))];
      const heads = new Map<string, { seq: number; hash: string }>();
      if (workspaces.length > 0) {
        const rows = await sql<{ workspace_id: string; seq: number; hash: string }>`
          SELECT DISTINCT ON (workspace_id) workspace_id, seq, hash FROM usage_receipts
          WHERE workspace_id IN (${sql.join(workspaces)}) ORDER BY workspace_id, seq DESC`.execute(tx);
        for (const r of rows.rows) heads.set(r.workspace_id, { seq: Number(r.seq), hash: r.hash });
      }
      const receipts = records.map((row) => {
        const head = heads.get(row.workspace_id) ?? { seq: 0, hash: "" };
        const c = claims.get(row.attempt_id);
        const body: ReceiptBody = {
          v: 1,
          workspaceId: row.workspace_id,
          seq: head.seq + 1,
          prevHash: head.hash,
          record: recordForReceipt(row as unknown as Record<string, unknown>),
          worker: c ? { claim: c.claim as unknown as UsageClaim, signature: c.signature, publicKey: c.node_public_key } : null,
        };
        const text = canonicalJson(body as unknown as Canonical);
        const hash = createHash("sha256").update(text, "utf8").digest("hex");
        heads.set(row.workspace_id, { seq: body.seq, hash });
        return { workspace_id: row.workspace_id, seq: body.seq, attempt_id: row.attempt_id, body: text, hash, signature: signer.sign(text).toString("base64url"), key_id: signer.keyId };
      });
      if (receipts.length > 0) await tx.insertInto("usage_receipts").values(receipts).execute();
      await tx.deleteFrom("receipt_queue").where("attempt_id", "in", ids).execute();
      return receipts.length;
    });
  }

  const runOnce = () => {
    running ??= write().finally(() => (running = undefined));
    return running;
  };
  const timer = setInterval(() => {
    runOnce().catch((err) => log.warn({ err }, "writing receipts failed; will retry"));
  }, options.intervalMs ?? 250);
  timer.unref();
  return {
    runOnce,
    async shutdown() {
      clearInterval(timer);
      await running?.catch(() => {});
    },
  };
}
