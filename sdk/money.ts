// Money in NGPU is integer nano-USD (1 USD = 1,000,000,000 nano-USD), never floating point.

export const NANO_USD_PER_USD = 1_000_000_000n;
const NANO = NANO_USD_PER_USD;

/** "272.88" → 272880000000n: decimal USD to nano-USD with no floating point; undefined if not a plain decimal. */
export function parseUsd(text: string): bigint | undefined {
  const m = /^\s*(\d{1,12})(?:\.(\d{1,9}))?\s*$/.exec(text);
  if (!m) return undefined;
  return BigInt(m[1]!) * NANO + BigInt((m[2] ?? "").padEnd(9, "0"));
}

/** 10980000000n → "10.98": nano-USD as decimal USD, at least two decimals, no trailing zeros beyond. */
export function formatUsd(nanoUsd: bigint): string {
  const negative = nanoUsd < 0n;
  const abs = negative ? -nanoUsd : nanoUsd;
  const whole = abs / NANO;
  const fraction = (abs % NANO).toString().padStart(9, "0").replace(/0+$/, "").padEnd(2, "0");
  return `${negative ? "-" : ""}${whole.toString()}.${fraction}`;
}
