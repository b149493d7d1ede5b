import { createHash, createPublicKey, verify } from "node:crypto";
import { type Canonical, canonicalJson } from "./canonical-json.js";
import { type UsageClaim, usageClaimBytes } from "./usage-claim.js";

/**
 * A usage receipt as the control plane issues it. `body` is canonical JSON of
 * {@link ReceiptBody}; `hash` is sha256(body) in hex; `signature` is the
 * control plane's Ed25519 signature over body.
 */
export interface ReceiptLike {
  readonly seq: number;
  readonly attemptId: string;
  readonly body: string;
  readonly hash: string;
  readonly signature: Uint8Array;
  readonly keyId: string;
  /** The usage record as stored now, canonical JSON; "" when it is gone. */
  readonly record: string;
}

/** What a receipt says. */
export interface ReceiptBody {
  readonly v: 1;
  readonly workspaceId: string;
  readonly seq: number;
  /** Hash of the previous receipt of the workspace; "" for the first. */
  readonly prevHash: string;
  /** The usage record as billed (every column but the time it was written). */
  readonly record: { readonly [column: string]: Canonical };
  /** The worker's signed measurement; null when the worker sent none (or an invalid one). */
  readonly worker: { readonly claim: UsageClaim; readonly signature: string; readonly publicKey: string } | null;
}

export interface VerifyResult {
  readonly ok: boolean;
  /** Receipts checked. */
  readonly receipts: number;
  /** What is wrong, one line each (empty when ok). */
  readonly problems: string[];
}

function ed25519(publicKey: string): ReturnType<typeof createPublicKey> {
  return createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: publicKey }, format: "jwk" });
}

/** Canonical JSON of a stored usage record, as receipts carry it. */
export function recordJson(record: { readonly [column: string]: Canonical }): string {
  return canonicalJson(record);
}

/**
 * Checks a workspace's receipts, offline: each is signed by a known control
 * plane key and hashes to what it says; they chain from seq 1 without a gap;
 * each usage record as stored now is exactly the one that was signed (a
 * changed field or a removed record fails); and each worker claim is signed
 * by its node's key and names the same task and attempt. `controlPlaneKeys`
 * maps key id → raw public key (base64url).
 */
export function verifyReceipts(receipts: readonly ReceiptLike[], controlPlaneKeys: ReadonlyMap<string, string>, options: { readonly workspaceId?: string } = {}): VerifyResult {
  const problems: string[] = [];
  const sorted = [...receipts].sort((a, b) => a.seq - b.seq);
  let prevHash = "";
  let expectedSeq = 1;
  for (const r of sorted) {
    const where = `receipt ${r.seq} (attempt ${r.attemptId})`;
    if (r.seq !== expectedSeq) problems.push(`${where}: expected receipt ${expectedSeq} here; receipts are missing from the chain`);
    expectedSeq = r.seq + 1;
    const key = controlPlaneKeys.get(r.keyId);
    if (!key) {
      problems.push(`${where}: signed with unknown key ${r.keyId}`);
    } else {
      let valid = false;
      try {
        valid = verify(null, Buffer.from(r.body, "utf8"), ed25519(key), r.signature);
      } catch {
        valid = false;
      }
      if (!valid) problems.push(`${where}: the control plane's signature does not verify`);
    }
    if (createHash("sha256").update(r.body, "utf8").digest("hex") !== r.hash) problems.push(`${where}: its hash does not match its body`);
    let body: ReceiptBody;
    try {
      body = JSON.parse(r.body) as ReceiptBody;
    } catch {
      problems.push(`${where}: its body is not JSON`);
      continue;
    }
    if (body.seq !== r.seq) problems.push(`${where}: its body says seq ${body.seq}`);
    if (body.prevHash !== prevHash) problems.push(`${where}: does not chain to the receipt before it (a receipt was changed or removed)`);
    prevHash = r.hash;
    if (options.workspaceId && body.workspaceId !== options.workspaceId) problems.push(`${where}: belongs to workspace ${body.workspaceId}`);
    if (body.record.attempt_id !== r.attemptId) problems.push(`${where}: its record is of attempt ${String(body.record.attempt_id)}`);
    if (r.record === "") {
      problems.push(`${where}: the usage record was removed`);
    } else if (r.record !== recordJson(body.record)) {
      const now = JSON.parse(r.record) as Record<string, Canonical>;
      const changed = [...new Set([...Object.keys(now), ...Object.keys(body.record)])].filter((k) => canonicalJson(now[k] ?? null) !== canonicalJson(body.record[k] ?? null));
      problems.push(`${where}: the usage record was changed since it was signed (${changed.join(", ")})`);
    }
    if (body.worker) {
      const { claim, signature, publicKey } = body.worker;
      let valid = false;
      try {
        valid = verify(null, usageClaimBytes(claim), ed25519(publicKey), Buffer.from(signature, "base64url"));
      } catch {
        valid = false;
      }
      if (!valid) problems.push(`${where}: the worker's signature does not verify`);
      if (claim.attemptId !== r.attemptId || claim.taskId !== body.record.task_id) problems.push(`${where}: the worker's claim is of another attempt`);
    }
  }
  return { ok: problems.length === 0, receipts: sorted.length, problems };
}
