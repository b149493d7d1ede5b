// CPU accounting from /proc (Linux), as the peers' harness does it: machine busy %
// from /proc/stat (100 % = every core busy) and CPU seconds of named processes
// (postgres, nats-server), reaped children included through cutime/cstime.
import { readdirSync, readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { r2 } from "./stats.js";

const CLK_TCK = 100; // USER_HZ on Linux x86_64

interface MachineCpu {
  readonly idle: number;
  readonly total: number;
}

function machineCpu(): MachineCpu {
  const fields = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0); // idle + iowait
  const total = fields.slice(0, 8).reduce((a, b) => a + b, 0);
  return { idle, total };
}

/** CPU ticks used so far by every process whose command name is one of `names`. */
export function processCpuTicks(names: readonly string[]): number {
  let ticks = 0;
  for (const pid of readdirSync("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    } catch {
      continue;
    }
    const l = stat.indexOf("(");
    const r = stat.lastIndexOf(")");
    if (!names.includes(stat.slice(l + 1, r))) continue;
    const f = stat.slice(r + 2).split(" ");
    ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
  }
  return ticks;
}

/** CPU ticks (utime + stime) of one process. */
export function pidCpuTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(f[11]) + Number(f[12]);
  } catch {
    return Number.NaN;
  }
}

export interface CpuSnapshot {
  readonly machine: MachineCpu;
  /** Ticks of the bench's own child processes (control plane, workers, load generator). */
  readonly pids: ReadonlyMap<number, number>;
  readonly postgres: number;
  readonly nats: number;
  readonly self: NodeJS.CpuUsage;
  readonly at: number;
}

export function cpuSnapshot(pids: readonly number[] = []): CpuSnapshot {
  return {
    machine: machineCpu(),
    pids: new Map(pids.map((p) => [p, pidCpuTicks(p)])),
    postgres: processCpuTicks(["postgres"]),
    nats: processCpuTicks(["nats-server"]),
    self: process.cpuUsage(),
    at: performance.now(),
  };
}

export interface CpuDelta {
  /** Busy share of the whole machine over the window, 100 = all cores. */
  readonly machineBusyPct: number;
  /** CPU seconds of all postgres processes (other users of the server included). */
  readonly postgresCpuS: number;
  readonly natsCpuS: number;
  /** CPU seconds of this process (the control plane and the bench driver). */
  readonly benchProcessCpuS: number;
  /** This process's CPU as % of one core. */
  readonly benchProcessCorePct: number;
  /** CPU seconds of each child process given to the snapshot. */
  readonly pidCpuS: ReadonlyMap<number, number>;
  /**
   * Machine busy % not explained by the bench's processes, Postgres and NATS: other
   * work on the machine (other users' tests) competing for the cores. High = noisy run.
   */
  readonly otherBusyPct: number;
  readonly seconds: number;
}

export function cpuSince(a: CpuSnapshot): CpuDelta {
  const b = cpuSnapshot();
  const total = b.machine.total - a.machine.total;
  const idle = b.machine.idle - a.machine.idle;
  const self = process.cpuUsage(a.self);
  const seconds = (b.at - a.at) / 1000;
  const selfS = (self.user + self.system) / 1e6;
  const pidCpuS = new Map([...a.pids].map(([pid, t]) => [pid, (pidCpuTicks(pid) - t) / CLK_TCK]));
  const postgresS = (b.postgres - a.postgres) / CLK_TCK;
  const natsS = (b.nats - a.nats) / CLK_TCK;
  const oursS = selfS + postgresS + natsS + [...pidCpuS.values()].reduce((x, y) => x + (Number.isFinite(y) ? y : 0), 0);
  const busyS = total > 0 ? (((total - idle) / total) * seconds * cores()) : Number.NaN;
  return {
    pidCpuS,
    otherBusyPct: r2(Math.max(0, (100 * (busyS - oursS)) / (seconds * cores()))),
    machineBusyPct: r2(total > 0 ? (100 * (total - idle)) / total : Number.NaN),
    postgresCpuS: r2(postgresS),
    natsCpuS: r2(natsS),
    benchProcessCpuS: r2(selfS),
    benchProcessCorePct: r2(seconds > 0 ? (100 * selfS) / seconds : Number.NaN),
    seconds: r2(seconds),
  };
}

export function ticksToSeconds(ticks: number): number {
  return ticks / CLK_TCK;
}

export function cores(): number {
  return availableParallelism();
}
