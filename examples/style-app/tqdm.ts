// Progress lines in tqdm's default format, the way most Cog models report progress in their logs
// (diffusers, transformers and friends all use tqdm), so a worker that understands tqdm
// understands this app and real model images alike.

/** The sub-character fill steps tqdm uses for a partly filled bar cell. */
const PARTIAL_BLOCKS = [" ", "▏", "▎", "▍", "▌", "▋", "▊", "▉"] as const;
/** tqdm draws a 10-cell bar when it cannot measure the terminal, which is always the case in logs. */
const BAR_CELLS = 10;

/** Formats seconds as tqdm does: `MM:SS`, or `H:MM:SS` past an hour. */
export function formatInterval(seconds: number): string {
  const total = Math.max(0, Math.round(seconds));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const mm = String(m).padStart(2, "0");
  const ss = String(s).padStart(2, "0");
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

function bar(fraction: number): string {
  const cells = Math.min(1, Math.max(0, fraction)) * BAR_CELLS;
  const full = Math.floor(cells);
  let out = "█".repeat(full);
  if (full < BAR_CELLS) {
    out += PARTIAL_BLOCKS[Math.floor((cells - full) * PARTIAL_BLOCKS.length)] ?? " ";
  }
  return out.padEnd(BAR_CELLS, " ");
}

/**
 * One tqdm progress line, e.g. ` 40%|████      | 4/10 [00:01<00:01,  3.20it/s]`.
 * @param n steps done so far
 * @param total steps in all
 * @param elapsedMs milliseconds since the loop started
 * @param desc optional label printed before the percentage, as tqdm's `desc=`
 */
export function formatTqdm(n: number, total: number, elapsedMs: number, desc?: string): string {
  const fraction = total > 0 ? n / total : 0;
  const percent = `${(fraction * 100).toFixed(0).padStart(3, " ")}%`;
  const elapsedS = elapsedMs / 1000;
  const rate = n > 0 && elapsedS > 0 ? n / elapsedS : undefined;
  const remaining = rate === undefined ? "?" : formatInterval((total - n) / rate);
  // tqdm switches to seconds per iteration below one iteration a second; `{:5.2f}` pads the number.
  const rateText = rate === undefined ? "?it/s" : rate >= 1 ? `${rate.toFixed(2).padStart(5)}it/s` : `${(1 / rate).toFixed(2).padStart(5)}s/it`;
  const prefix = desc ? `${desc}: ` : "";
  return `${prefix}${percent}|${bar(fraction)}| ${n}/${total} [${formatInterval(elapsedS)}<${remaining}, ${rateText}]`;
}
