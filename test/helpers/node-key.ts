import { createPublicKey, generateKeyPairSync, type KeyObject, sign } from "node:crypto";

/** A node key as a worker makes one, for tests that speak the worker protocol by hand. */
export interface TestNodeKey {
  readonly privateKey: KeyObject;
  /** Raw 32 bytes, as sent in Hello.public_key. */
  readonly publicKey: Uint8Array;
  /** The answer to a NodeChallenge. */
  prove(nonce: Uint8Array): Uint8Array;
}

export function newNodeKey(): TestNodeKey {
  const { privateKey } = generateKeyPairSync("ed25519");
  return nodeKeyOf(privateKey);
}

export function nodeKeyOf(privateKey: KeyObject): TestNodeKey {
  const x = createPublicKey(privateKey).export({ format: "jwk" }).x ?? "";
  return {
    privateKey,
    publicKey: new Uint8Array(Buffer.from(x, "base64url")),
    prove: (nonce) => new Uint8Array(sign(null, Buffer.concat([Buffer.from("ngpu-node-proof-v1\n"), nonce]), privateKey)),
  };
}
