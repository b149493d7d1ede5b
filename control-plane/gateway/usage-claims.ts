import { createPublicKey, type KeyObject, verify } from "node:crypto";
import type { Finished } from "../../gen/ngpu/v1/worker_pb.js";
import { type UsageClaim, usageClaimBytes } from "../../receipts/usage-claim.js";
import type { Db } from "../db/database.js";

/** Node keys already imported (one per connected node; imported once, not per result). */
const nodeKeys = new Map<string, KeyObject>();

function nodeKey(publicKey: string): KeyObject {
  let key = nodeKeys.get(publicKey);
  if (!key) {
    key = createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: publicKey }, format: "jwk" });
    if (nodeKeys.size >= 10_000) nodeKeys.clear();
    nodeKeys.set(publicKey, key);
  }
  return key;
}

/** A worker's signed measurement of one attempt, checked against its node key. */
export interface CheckedClaim {
  readonly attemptId: string;
  readonly claim: UsageClaim;
  readonly signature: string;
  readonly nodePublicKey: string;
}

/**
 * The claim a Finished carries, when its signature verifies with the node's
 * key; otherwise why not (the attempt still finishes, without a worker
 * attestation on its receipt).
 */
export function checkClaim(taskId: string, attemptId: string, f: Finished, nodePublicKey: string): CheckedClaim | string {
  if (f.workerSignature.length === 0) return "task_update.finished.worker_signature: is missing; the receipt will carry no worker attestation";
  if (f.gpuUuids.length > 64) return "task_update.finished.gpu_uuids: at most 64";
  const claim: UsageClaim = {
    taskId,
    attemptId,
    gpuUuids: f.gpuUuids.map((u) => u.slice(0, 128)),
    startedAtMs: Number(f.startedAtMs),
    endedAtMs: Number(f.endedAtMs),
    gpuMs: Number(f.gpuMs),
  };
  let valid = false;
  try {
    valid = verify(null, usageClaimBytes(claim), nodeKey(nodePublicKey), f.workerSignature);
  } catch {
    valid = false;
  }
  if (!valid) return "task_update.finished.worker_signature: does not verify with this node's key; the receipt will carry no worker attestation";
  return { attemptId, claim, signature: Buffer.from(f.workerSignature).toString("base64url"), nodePublicKey };
}

/** Keeps checked claims (many per statement); a replayed one keeps the first. */
export async function saveClaims(db: Db, claims: readonly CheckedClaim[]): Promise<void[]> {
  if (claims.length > 0) {
    await db
      .insertInto("attempt_claims")
      .values(claims.map((c) => ({ attempt_id: c.attemptId, claim: JSON.stringify(c.claim), signature: c.signature, node_public_key: c.nodePublicKey })))
      .onConflict((oc) => oc.column("attempt_id").doNothing())
      .execute();
  }
  return claims.map(() => undefined);
}
