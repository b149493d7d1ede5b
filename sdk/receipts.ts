import type { Client } from "@connectrpc/connect";
import type { ReceiptService } from "../gen/ngpu/v1/receipt_pb.js";
import { type ReceiptLike, type VerifyResult, verifyReceipts } from "../receipts/verify-receipts.js";

/** Everything needed to check a workspace's receipts offline (what `ngpu usage verify --export` writes). */
export interface ReceiptBundle {
  /** Control-plane key id → raw Ed25519 public key (base64url). */
  readonly keys: Record<string, string>;
  readonly receipts: ReadonlyArray<Omit<ReceiptLike, "signature"> & { readonly signature: string }>;
  /** Usage records that had no receipt yet when fetched. */
  readonly unreceiptedRecords: number;
}

export interface ReceiptsApi {
  /** Fetches the workspace's receipts (all pages) and the control plane's public keys. */
  fetch(options?: { signal?: AbortSignal }): Promise<ReceiptBundle>;
  /** Fetches them, then checks them here (nothing is taken on the server's word). */
  verify(options?: { signal?: AbortSignal }): Promise<VerifyResult & { readonly unreceiptedRecords: number }>;
}

/**
 * Checks that parsed JSON has the shape of a ReceiptBundle (what `ngpu usage verify --export` writes),
 * so a wrong file is refused with what is missing instead of failing deep inside the verification.
 */
export function parseReceiptBundle(json: unknown): ReceiptBundle {
  const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
  if (!isRecord(json)) throw new Error("expected a JSON object with keys, receipts and unreceiptedRecords");
  if (!isRecord(json.keys) || !Object.values(json.keys).every((k) => typeof k === "string")) throw new Error("keys: expected an object of key id → public key");
  if (!Array.isArray(json.receipts)) throw new Error("receipts: expected an array");
  const fields = { seq: "number", attemptId: "string", body: "string", hash: "string", signature: "string", keyId: "string", record: "string" } as const;
  json.receipts.forEach((r: unknown, i) => {
    if (!isRecord(r)) throw new Error(`receipts[${i}]: expected an object`);
    for (const [name, type] of Object.entries(fields)) {
      if (typeof r[name] !== type) throw new Error(`receipts[${i}].${name}: expected a ${type}`);
    }
  });
  if (typeof json.unreceiptedRecords !== "number") throw new Error("unreceiptedRecords: expected a number");
  return json as unknown as ReceiptBundle;
}

/** Checks a bundle offline; see verifyReceipts. */
export function verifyReceiptBundle(bundle: ReceiptBundle): VerifyResult {
  const receipts = bundle.receipts.map((r) => ({ ...r, signature: Buffer.from(r.signature, "base64url") }));
  return verifyReceipts(receipts, new Map(Object.entries(bundle.keys)));
}

export function createReceiptsApi(client: Client<typeof ReceiptService>, call: (o?: { signal?: AbortSignal }) => { signal: AbortSignal; timeoutMs: number }): ReceiptsApi {
  const api: ReceiptsApi = {
    async fetch(options) {
      const keys = await client.getReceiptKeys({}, call(options));
      const receipts: Array<ReceiptBundle["receipts"][number]> = [];
      let pageToken = "";
      let unreceiptedRecords = 0;
      do {
        const page = await client.listReceipts({ pageSize: 1000, pageToken }, call(options));
        for (const r of page.receipts) {
          receipts.push({ seq: Number(r.seq), attemptId: r.attemptId, body: r.body, hash: r.hash, signature: Buffer.from(r.signature).toString("base64url"), keyId: r.keyId, record: r.record });
        }
        unreceiptedRecords = page.unreceiptedRecords;
        pageToken = page.nextPageToken;
      } while (pageToken !== "");
      return { keys: Object.fromEntries(keys.keys.map((k) => [k.keyId, Buffer.from(k.publicKey).toString("base64url")])), receipts, unreceiptedRecords };
    },
    async verify(options) {
      const bundle = await api.fetch(options);
      return { ...verifyReceiptBundle(bundle), unreceiptedRecords: bundle.unreceiptedRecords };
    },
  };
  return api;
}
