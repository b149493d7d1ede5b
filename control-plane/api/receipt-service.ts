import type { ServiceImpl } from "@connectrpc/connect";
import { ReceiptService } from "../../gen/ngpu/v1/receipt_pb.js";
import { canonicalJson } from "../../receipts/canonical-json.js";
import type { Db } from "../db/database.js";
import { recordForReceipt } from "../receipts/receipt-writer.js";
import { invalidArgument } from "../errors.js";
import { type Authenticate, requireWorkspaceRead } from "./auth.js";
import { decodePageToken, encodePageToken } from "./validate.js";

export interface ReceiptServiceDeps {
  readonly db: Db;
  readonly authenticate: Authenticate;
}

export function createReceiptService(deps: ReceiptServiceDeps): ServiceImpl<typeof ReceiptService> {
  const { db, authenticate } = deps;
  return {
    async listReceipts(req, ctx) {
      const principal = await authenticate(ctx);
      requireWorkspaceRead(principal, "reading usage receipts");
      if (req.pageSize > 1000) throw invalidArgument("page_size", "must be at most 1000");
      const limit = req.pageSize || 500;
      const cursor = decodePageToken("page_token", req.pageToken, "q", "number");
      let query = db
        .selectFrom("usage_receipts as r")
        .leftJoin("usage_records as u", "u.attempt_id", "r.attempt_id")
        .select(["r.seq", "r.attempt_id", "r.body", "r.hash", "r.signature", "r.key_id"])
        .selectAll("u")
        .where("r.workspace_id", "=", principal.workspaceId)
        .orderBy("r.seq")
        .limit(limit + 1);
      if (cursor) query = query.where("r.seq", ">", Number(cursor.q));
      const rows = await query.execute();
      const page = rows.slice(0, limit);
      const receipts = page.map((row) => {
        const { seq, body, hash, signature, key_id, ...rest } = row as typeof row & Record<string, unknown>;
        // The record as stored now; the left join leaves its columns null when it is gone.
        const record = rest.task_id == null ? "" : canonicalJson(recordForReceipt(rest));
        return { seq: BigInt(seq), attemptId: body ? String(JSON.parse(body).record.attempt_id) : "", body, hash, signature: Buffer.from(signature, "base64url"), keyId: key_id, record };
      });
      const last = page[page.length - 1];
      const pending = await db
        .selectFrom("usage_records as u")
        .innerJoin("receipt_queue as q", "q.attempt_id", "u.attempt_id")
        .select((eb) => eb.fn.countAll<number>().as("n"))
        .where("u.workspace_id", "=", principal.workspaceId)
        .executeTakeFirstOrThrow();
      return { receipts, nextPageToken: rows.length > limit && last ? encodePageToken({ q: Number(last.seq) }) : "", unreceiptedRecords: Number(pending.n) };
    },

    async getReceiptKeys(_req, ctx) {
      await authenticate(ctx);
      const keys = await db.selectFrom("receipt_keys").select(["id", "public_key"]).orderBy("created_at").execute();
      return { keys: keys.map((k) => ({ keyId: k.id, publicKey: Buffer.from(k.public_key, "base64url") })) };
    },
  };
}
