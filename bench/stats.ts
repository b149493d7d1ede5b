// Small statistics and output helpers shared by the benchmark parts.

export function sorted(xs: readonly number[]): number[] {
  return [...xs].sort((a, b) => a - b);
}

export function median(xs: readonly number[]): number {
  const s = sorted(xs);
  const n = s.length;
  if (n === 0) return Number.NaN;
  return n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
}

/** Nearest-rank percentile (the peers' harness uses the same definition). */
export function pct(xs: readonly number[], p: number): number {
  const s = sorted(xs);
  if (s.length === 0) return Number.NaN;
  const idx = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[idx]!;
}

export function mean(xs: readonly number[]): number {
  return xs.length === 0 ? Number.NaN : xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** Rounds to 2 decimals (keeps NaN and infinities as they are). */
export function r2(x: number): number {
  return Number.isFinite(x) ? Math.round(x * 100) / 100 : x;
}

export interface Distribution {
  readonly n: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
  readonly mean: number;
}

export function distribution(xs: readonly number[]): Distribution {
  return {
    n: xs.length,
    p50: r2(pct(xs, 50)),
    p90: r2(pct(xs, 90)),
    p99: r2(pct(xs, 99)),
    max: r2(xs.length ? Math.max(...xs) : Number.NaN),
    mean: r2(mean(xs)),
  };
}

/** A flat result record: what a part measured, printed as a table and as one JSON line. */
export type ResultValue = string | number | boolean | null;
export type Result = Record<string, ResultValue>;

/** Prints a two-column table of a result (key, value), with a title line. */
export function printTable(title: string, rows: ReadonlyArray<readonly [string, ResultValue]>): void {
  const width = Math.max(...rows.map(([k]) => k.length), 10);
  const lines = [`\n== ${title} ==`];
  for (const [k, v] of rows) lines.push(`  ${k.padEnd(width)}  ${formatValue(v)}`);
  process.stdout.write(lines.join("\n") + "\n");
}

/** Prints records side by side: one row per field, one column per record (e.g. per ramp step). */
export function printColumns(title: string, records: readonly Result[], fields: readonly string[]): void {
  const cells = fields.map((f) => [f, ...records.map((r) => formatValue(r[f] ?? ""))]);
  const widths = cells[0]!.map((_, i) => Math.max(...cells.map((row) => row[i]!.length)));
  const line = (row: readonly string[]) => "  " + row.map((x, i) => (i === 0 ? x.padEnd(widths[i]!) : x.padStart(widths[i]!))).join("  ");
  process.stdout.write([`\n== ${title} ==`, ...cells.map(line)].join("\n") + "\n");
}

function formatValue(v: ResultValue): string {
  if (typeof v === "number") return Number.isInteger(v) ? v.toLocaleString("en-US") : v.toLocaleString("en-US", { maximumFractionDigits: 2 });
  return String(v);
}
