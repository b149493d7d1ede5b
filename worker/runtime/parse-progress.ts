// Structured progress out of app logs. Cog has no progress field; models print tqdm bars
// (diffusers, transformers, our demo app), so that is what we read. Pure functions, no state.

/** Progress of a running prediction, as the worker reports it upstream. */
export interface Progress {
  /** 0–100, from step/totalSteps when both are known. */
  readonly percent: number;
  /** Steps done (rounded to a whole number for unit-scaled bars such as `1.2M/4.5M`). */
  readonly step: number;
  /** Steps in all. */
  readonly totalSteps: number;
  /** The progress line itself, trimmed (label, bar, counts, times), for display. */
  readonly message: string;
  /** tqdm's estimate of the time left, in ms, when it printed one. */
  readonly etaMs?: number;
}

const UNIT_SCALE: Readonly<Record<string, number>> = { "": 1, k: 1e3, K: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15 };

// `<pct>%|<bar>| <n>/<total>` with optional `[<elapsed><<remaining>, <rate>]`. The bar may hold
// anything but `|` (unicode blocks, or `#` and digits for ascii bars).
const TQDM = /(\d{1,3}(?:\.\d+)?)%\|([^|\r\n]*)\|\s*(\d+(?:\.\d+)?)([kKMGTP]?)\/(\d+(?:\.\d+)?)([kKMGTP]?)(?:\s*\[([^\]<]*)(?:<([^\],]*))?[^\]]*\])?/;

/** `MM:SS`, `H:MM:SS` or `D days, H:MM:SS` (tqdm's format_interval) to ms; undefined for `?`. */
function intervalMs(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const m = /^\s*(?:(\d+)d(?:ays?)?,?\s*)?(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)\s*$/.exec(text);
  if (!m) return undefined;
  const [, d = "0", h = "0", min = "0", s = "0"] = m;
  return Math.round(((Number(d) * 24 + Number(h)) * 3600 + Number(min) * 60 + Number(s)) * 1000);
}

/**
 * Reads one log line. Returns undefined for lines that hold no progress bar.
 *
 * Understands tqdm's forms: ` 40%|████      | 4/10 [00:01<00:01,  3.20it/s]`,
 * `Denoising: 100%|██████████| 50/50 [00:05<00:00, 9.8it/s]`, ascii bars (`|####      |`),
 * unit-scaled counts (`1.20M/4.50M`) and bars with no timing part.
 */
export function parseProgressLine(line: string): Progress | undefined {
  const m = TQDM.exec(line);
  if (!m) return undefined;
  const [, pctText = "0", , nText = "0", nUnit = "", totalText = "0", totalUnit = "", , remaining] = m;
  const step = Number(nText) * (UNIT_SCALE[nUnit] ?? 1);
  const totalSteps = Number(totalText) * (UNIT_SCALE[totalUnit] ?? 1);
  if (!Number.isFinite(step) || !Number.isFinite(totalSteps)) return undefined;
  const raw = totalSteps > 0 ? (step / totalSteps) * 100 : Number(pctText);
  const percent = Math.min(100, Math.max(0, raw));
  const etaMs = intervalMs(remaining);
  return {
    percent,
    step: Math.round(step),
    totalSteps: Math.round(totalSteps),
    message: line.trim(),
    ...(etaMs === undefined ? {} : { etaMs }),
  };
}

/**
 * The latest progress in a chunk of log text (several lines, `\n` or tqdm's `\r` redraws), or
 * undefined when it holds none.
 */
export function lastProgress(text: string): Progress | undefined {
  const lines = text.split(/\r\n|\r|\n/);
  for (let i = lines.length - 1; i >= 0; i--) {
    const p = parseProgressLine(lines[i] ?? "");
    if (p) return p;
  }
  return undefined;
}
