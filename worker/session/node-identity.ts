import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import { join } from "node:path";

/**
 * Who this worker is: the node id the control plane gave it, and the Ed25519
 * key pair it made on first start. Both live in its data folder, so a restarted
 * worker comes back as the same node; the private key never leaves the folder
 * (owner-only permissions) and proves the node on every connection.
 */
export interface NodeIdentity {
  nodeId(): string;
  save(nodeId: string): void;
  /** The raw 32-byte Ed25519 public key, registered on first join. */
  readonly publicKey: Uint8Array;
  /** Signs a control plane's challenge (see NodeProof in worker.proto). */
  prove(nonce: Uint8Array): Uint8Array;
  /** Signs arbitrary bytes with the node key (usage receipts). */
  sign(data: Uint8Array): Uint8Array;
}

const PROOF_CONTEXT = Buffer.from("ngpu-node-proof-v1\n");

/** Loads the node key, or makes one the first time, written with mode 0600 in a 0700 folder. */
function loadOrCreateKey(dataDir: string): KeyObject {
  const file = join(dataDir, "node-key.pem");
  if (existsSync(file)) {
    // Someone loosened the permissions: tighten them again rather than run with a readable key.
    if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
    return createPrivateKey(readFileSync(file, "utf8"));
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const { privateKey } = generateKeyPairSync("ed25519");
  writeFileSync(`${file}.tmp`, privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
  return privateKey;
}

export function openNodeIdentity(dataDir: string): NodeIdentity {
  const file = join(dataDir, "node.json");
  let current = "";
  try {
    const parsed = JSON.parse(readFileSync(file, "utf8")) as { nodeId?: unknown };
    if (typeof parsed.nodeId === "string") current = parsed.nodeId;
  } catch {
    // First start, or an unreadable file: join as a new node.
  }
  const privateKey = loadOrCreateKey(dataDir);
  const jwk = createPublicKey(privateKey).export({ format: "jwk" });
  const publicKey = new Uint8Array(Buffer.from(jwk.x ?? "", "base64url"));
  return {
    nodeId: () => current,
    save(nodeId) {
      if (nodeId === current) return;
      current = nodeId;
      mkdirSync(dataDir, { recursive: true, mode: 0o700 });
      // Write then rename, so a crash never leaves half a file.
      writeFileSync(`${file}.tmp`, JSON.stringify({ nodeId }) + "\n", { mode: 0o600 });
      renameSync(`${file}.tmp`, file);
    },
    publicKey,
    prove: (nonce) => new Uint8Array(sign(null, Buffer.concat([PROOF_CONTEXT, nonce]), privateKey)),
    sign: (data) => new Uint8Array(sign(null, data, privateKey)),
  };
}
