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
