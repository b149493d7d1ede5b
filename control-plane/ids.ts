import { randomBytes } from "node:crypto";

const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz";

/**
 * A new id: prefix, 48 bits of millisecond time, then 80 random bits, in
 * Crockford base32 — sortable by creation and safe in URLs and NATS subjects.
 */
export function newId(prefix: string): string {
  let time = Date.now();
  let head = "";
  for (let i = 0; i < 10; i++) {
    head = ALPHABET[time % 32] + head;
    time = Math.floor(time / 32);
  }
  const bytes = randomBytes(16);
  let tail = "";
  for (let i = 0; i < 16; i++) tail += ALPHABET[bytes[i]! % 32];
  return `${prefix}_${head}${tail}`;
}

/** A random secret for keys and tokens (256 bits, base64url). */
export function newSecret(): string {
  return randomBytes(32).toString("base64url");
}
