// Formatting of numbers, sizes, durations, times and tables for human output.
// Pure functions (the current time is a parameter) so they are tested exactly.

/** Placeholder for a value the server did not report. */
export const MISSING = "-";

const BYTE_UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"] as const;

function trimZero(text: string): string {
  return text.endsWith(".0") ? text.slice(0, -2) : text;
}

/** Bytes in binary units with at most one decimal: 0 B, 512 B, 1.5 KiB, 24 GiB. */
export function formatBytes(bytes: number | bigint | undefined): string {
  if (bytes === undefined) return MISSING;
  let value = Number(bytes);
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < BYTE_UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  const text = unit === 0 ? String(value) : trimZero(value.toFixed(1));
  return `${text} ${BYTE_UNITS[unit]}`;
}

/** A duration in ms, compact: 850ms, 12.3s, 4m05s, 2h03m, 3d04h. */
export function formatDuration(ms: number | bigint | undefined): string {
  if (ms === undefined) return MISSING;
  const n = Number(ms);
  if (n < 0) return `-${formatDuration(-n)}`;
  if (n < 1_000) return `${Math.round(n)}ms`;
  // Rounded, not cut: 3,295 ms is 3.3s.
  const tenths = Math.round(n / 100);
  if (tenths < 600) return `${trimZero((tenths / 10).toFixed(1))}s`;
  const pad = (x: number) => String(x).padStart(2, "0");
  const s = Math.round(n / 1_000);
  if (s < 3_600) return `${Math.floor(s / 60)}m${pad(s % 60)}s`;
  if (s < 86_400) return `${Math.floor(s / 3_600)}h${pad(Math.floor((s % 3_600) / 60))}m`;
  return `${Math.floor(s / 86_400)}d${pad(Math.floor((s % 86_400) / 3_600))}h`;
}

/** A point in time as UTC, to the second: 2024-05-01T12:00:03Z. */
export function formatTime(date: Date | undefined): string {
  if (date === undefined) return MISSING;
  return `${date.toISOString().slice(0, 19)}Z`;
}

/** How long ago `date` was at `now`: "just now", "42s ago", "5m ago", "3h ago", "2d ago" ("in 5m" for the future). */
export function formatAge(date: Date | undefined, now: Date): string {
  if (date === undefined) return MISSING;
  const deltaMs = now.getTime() - date.getTime();
  const abs = Math.abs(deltaMs);
  if (abs < 1_000) return "just now";
  const s = Math.floor(abs / 1_000);
  const text = s < 60 ? `${s}s` : s < 3_600 ? `${Math.floor(s / 60)}m` : s < 86_400 ? `${Math.floor(s / 3_600)}h` : `${Math.floor(s / 86_400)}d`;
  return deltaMs >= 0 ? `${text} ago` : `in ${text}`;
}

/** A percentage, rounded: 42%. */
export function formatPercent(percent: number | undefined): string {
  return percent === undefined ? MISSING : `${Math.round(percent)}%`;
}

/** Degrees Celsius, rounded: 61°C. */
export function formatCelsius(celsius: number | undefined): string {
  return celsius === undefined ? MISSING : `${Math.round(celsius)}°C`;
}

/** Watts, rounded: 200 W. */
export function formatWatts(watts: number | undefined): string {
  return watts === undefined ? MISSING : `${Math.round(watts)} W`;
}

/**
 * A plain-text table: columns left-aligned and separated by two spaces, the last
 * column not padded (no trailing blanks). Rows shorter than the header are padded.
 */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, col) => Math.max(h.length, ...rows.map((row) => (row[col] ?? "").length)));
  const line = (cells: readonly string[]) =>
    widths
      .map((width, col) => {
        const cell = cells[col] ?? "";
        return col === widths.length - 1 ? cell : cell.padEnd(width);
      })
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}
