// Numbers as people read them. Money stays integer nano-USD until it becomes text.
import { type Timestamp, timestampDate } from "@bufbuild/protobuf/wkt";
import { TaskState } from "../../gen/ngpu/v1/task_pb.js";

export function stateName(state: TaskState): string {
  return (TaskState[state] ?? "UNSPECIFIED").toLowerCase().replace("_", " ");
}

export const TERMINAL = new Set([TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED, TaskState.TIMED_OUT, TaskState.EXPIRED]);

export function isTerminal(state: TaskState): boolean {
  return TERMINAL.has(state);
}

export function bytes(value: bigint | number | undefined): string {
  if (value === undefined) return "–";
  const n = Number(value);
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v >= 10 || i === 0 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
}

export function duration(ms: bigint | number | undefined): string {
  if (ms === undefined) return "–";
  const n = Number(ms);
  if (n < 1000) return `${n} ms`;
  if (n < 60_000) return `${(n / 1000).toFixed(n < 10_000 ? 2 : 1)} s`;
  const m = Math.floor(n / 60_000);
  if (m < 60) return `${m} min ${Math.round((n % 60_000) / 1000)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** nano-USD → "$0.000123": integer arithmetic, never a float. */
export function usd(nano: bigint | number, decimals = 6): string {
  const value = BigInt(nano);
  const negative = value < 0n;
  const abs = negative ? -value : value;
  const whole = abs / 1_000_000_000n;
  const fraction = (abs % 1_000_000_000n).toString().padStart(9, "0").slice(0, decimals);
  return `${negative ? "-" : ""}$${whole.toLocaleString("en-US")}.${fraction}`;
}

export function percent(value: number | undefined): string {
  return value === undefined ? "–" : `${Math.round(value)} %`;
}

export function time(ts: Timestamp | undefined): string {
  return ts ? timestampDate(ts).toLocaleTimeString() : "–";
}

export function dateTime(ts: Timestamp | undefined): string {
  return ts ? timestampDate(ts).toLocaleString() : "–";
}

export function ms(ts: Timestamp | undefined): number | undefined {
  return ts ? timestampDate(ts).getTime() : undefined;
}
