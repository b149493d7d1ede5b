// Keeps the last bytes an app printed, so start failures and crashes can say why.

/** A bounded buffer of the most recent output text. */
export interface OutputTail {
  append(chunk: string): void;
  /** The kept text (at most about `maxBytes`, cut at a character boundary). */
  text(): string;
}

/** @param maxBytes how much output to keep, in bytes of UTF-8 (e.g. 64 KiB) */
export function createOutputTail(maxBytes: number): OutputTail {
  const chunks: string[] = [];
  let bytes = 0;
  return {
    append(chunk) {
      if (chunk === "") return;
      chunks.push(chunk);
      bytes += Buffer.byteLength(chunk);
      // Drop whole chunks from the front while the rest still covers the budget; cut the text at read time.
      while (chunks.length > 1 && bytes - Buffer.byteLength(chunks[0] ?? "") >= maxBytes) {
        bytes -= Buffer.byteLength(chunks[0] ?? "");
        chunks.shift();
      }
    },
    text() {
      const all = chunks.join("");
      const buf = Buffer.from(all);
      if (buf.length <= maxBytes) return all;
      // Decoding from a mid-character offset yields U+FFFD at the start; drop it.
      return buf.subarray(buf.length - maxBytes).toString("utf8").replace(/^\uFFFD+/, "");
    },
  };
}
