import { createPublicKey, randomBytes, verify } from "node:crypto";

/**
 * Node identity: a worker registers an Ed25519 public key when it first joins,
 * and on every connection signs a fresh nonce from the control plane with the
 * private key it keeps on its disk. Knowing a node's id is not enough to be it.
 */
const PROOF_CONTEXT = Buffer.from("ngpu-node-proof-v1\n");
const ED25519_PUBLIC_KEY_BYTES = 32;
const ED25519_SIGNATURE_BYTES = 64;

export function newNonce(): Uint8Array {
  return randomBytes(32);
}

/** The stored form of a raw public key (base64url), or undefined when it is not one. */
export function encodePublicKey(raw: Uint8Array): string | undefined {
  if (raw.length !== ED25519_PUBLIC_KEY_BYTES) return undefined;
  const encoded = Buffer.from(raw).toString("base64url");
  try {
    createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: encoded }, format: "jwk" });
  } catch {
    return undefined;
  }
  return encoded;
}

/** True when `signature` is the node key's signature over this nonce. */
export function verifyProof(publicKey: string, nonce: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== ED25519_SIGNATURE_BYTES) return false;
  try {
    const key = createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: publicKey }, format: "jwk" });
    return verify(null, Buffer.concat([PROOF_CONTEXT, nonce]), key, signature);
  } catch {
    return false;
  }
}
