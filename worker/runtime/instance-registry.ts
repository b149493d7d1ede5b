import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * Remembers, in the worker's data folder, the app processes it started. App
 * instances run in their own process groups, so a worker that is SIGKILLed
 * leaves them running (holding GPUs); the next start of the worker stops them.
 * A recorded pid is only killed if that process still carries this worker's
 * mark in its environment, so a reused pid is never hit.
 */
export interface InstanceRegistry {
  /** Environment to give each app process: the mark that identifies it as ours. */
  readonly env: Readonly<Record<string, string>>;
  add(pid: number): void;
  remove(pid: number): void;
  /** Stops app processes a previous run of this worker left behind; returns how many. */
  reapLeftovers(): number;
}

const MARK = "NGPU_WORKER_INSTANCE_MARK";

export function openInstanceRegistry(dataDir: string): InstanceRegistry {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const file = join(dataDir, "instances.json");
  let saved: { mark?: string; pids?: number[] } = {};
  try {
    saved = JSON.parse(readFileSync(file, "utf8")) as typeof saved;
  } catch {
    // none recorded yet
  }
  const mark = saved.mark ?? randomBytes(12).toString("hex");
  const leftovers = saved.pids ?? [];
  const pids = new Set<number>();
  const write = () => {
    writeFileSync(`${file}.tmp`, JSON.stringify({ mark, pids: [...pids] }), { mode: 0o600 });
    renameSync(`${file}.tmp`, file);
  };
  const ours = (pid: number) => {
    try {
      return readFileSync(`/proc/${pid}/environ`, "latin1").split("\0").includes(`${MARK}=${mark}`);
    } catch {
      return false; // gone, or not Linux
    }
  };
  return {
    env: { [MARK]: mark },
    add(pid) {
      pids.add(pid);
      write();
    },
    remove(pid) {
      if (pids.delete(pid)) write();
    },
    reapLeftovers() {
      let reaped = 0;
      for (const pid of leftovers) {
        if (!ours(pid)) continue;
        try {
          process.kill(-pid, "SIGKILL");
          reaped++;
        } catch {
          // already gone
        }
      }
      write();
      return reaped;
    },
  };
}
