import { createHash, createPublicKey, generateKeyPairSync, sign } from "node:crypto";
import { describe, expect, it } from "vitest";
import { type Canonical, canonicalJson } from "./canonical-json.js";
import { usageClaimBytes } from "./usage-claim.js";
import { type ReceiptBody, type ReceiptLike, recordJson, verifyReceipts } from "./verify-receipts.js";

const raw = (key: ReturnType<typeof generateKeyPairSync>["privateKey"]) => createPublicKey(key).export({ format: "jwk" }).x ?? "";

/** A chain of receipts as the control plane writes them, for records of one workspace. */
function chain(records: Array<Record<string, Canonical>>) {
  const cp = generateKeyPairSync("ed25519").privateKey;
  const node = generateKeyPairSync("ed25519").privateKey;
  let prevHash = "";
  const receipts: ReceiptLike[] = records.map((record, i) => {
    const claim = { taskId: String(record.task_id), attemptId: String(record.attempt_id), gpuUuids: ["GPU-1"], startedAtMs: 1, endedAtMs: 1001, gpuMs: 1000 };
    const worker = { claim, signature: sign(null, usageClaimBytes(claim), node).toString("base64url"), publicKey: raw(node) };
    const body: ReceiptBody = { v: 1, workspaceId: "ws_1", seq: i + 1, prevHash, record, worker };
    const text = canonicalJson(body as unknown as Canonical);
    const hash = createHash("sha256").update(text).digest("hex");
    prevHash = hash;
    return { seq: i + 1, attemptId: String(record.attempt_id), body: text, hash, signature: sign(null, Buffer.from(text), cp), keyId: "rk_1", record: recordJson(record) };
  });
  return { receipts, keys: new Map([["rk_1", raw(cp)]]) };
}

const records = [1, 2, 3].map((i) => ({ attempt_id: `att_${i}`, task_id: `tsk_${i}`, workspace_id: "ws_1", gpu_ms: 1000 * i, cost_nano_usd: 500 * i, outcome: "SUCCEEDED", started_at_ms: null }));

describe("verifyReceipts", () => {
  it("accepts an honest chain", () => {
    const { receipts, keys } = chain(records);
    expect(verifyReceipts(receipts, keys)).toEqual({ ok: true, receipts: 3, problems: [] });
  });

  it("fails when any field of a stored record changed", () => {
    const { receipts, keys } = chain(records);
    for (const field of Object.keys(records[1]!)) {
      const changed = { ...records[1]!, [field]: field === "gpu_ms" ? 9999 : "tampered" };
      const tampered = receipts.map((r, i) => (i === 1 ? { ...r, record: recordJson(changed) } : r));
      const result = verifyReceipts(tampered, keys);
      expect(result.ok, field).toBe(false);
      expect(result.problems.join("\n"), field).toContain(`changed since it was signed (${field})`);
    }
  });

  it("fails when a record, or a receipt, is removed", () => {
    const { receipts, keys } = chain(records);
    expect(verifyReceipts(receipts.map((r, i) => (i === 0 ? { ...r, record: "" } : r)), keys).problems).toEqual(["receipt 1 (attempt att_1): the usage record was removed"]);
    const gap = verifyReceipts([receipts[0]!, receipts[2]!], keys);
    expect(gap.ok).toBe(false);
    expect(gap.problems.join("\n")).toMatch(/receipts are missing from the chain/);
  });

  it("fails on a forged signature, body or worker claim", () => {
    const { receipts, keys } = chain(records);
    const forged = receipts.map((r, i) => (i === 2 ? { ...r, signature: new Uint8Array(64) } : r));
    expect(verifyReceipts(forged, keys).problems).toEqual(["receipt 3 (attempt att_3): the control plane's signature does not verify"]);
    expect(verifyReceipts(receipts, new Map([["rk_1", raw(generateKeyPairSync("ed25519").privateKey)]])).ok).toBe(false);
    // A re-signed body with a worker claim the node never signed.
    const body = JSON.parse(receipts[0]!.body) as ReceiptBody;
    const lie = canonicalJson({ ...body, worker: { ...body.worker!, claim: { ...body.worker!.claim, gpuMs: 99_999 } } } as unknown as Canonical);
    const result = verifyReceipts([{ ...receipts[0]!, body: lie }], keys);
    expect(result.problems).toEqual(expect.arrayContaining(["receipt 1 (attempt att_1): the control plane's signature does not verify", "receipt 1 (attempt att_1): the worker's signature does not verify"]));
  });
});
