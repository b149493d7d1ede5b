import type { Logger } from "../log.js";
import type { AppInstance } from "./app-instance.js";

/** What the pool needs to know about an app to start or reuse an instance of it. */
export interface AppKey {
  readonly id: string;
  readonly version: number;
}

export type StartInstance = (gpuIndices: readonly number[], signal: AbortSignal) => Promise<AppInstance>;

export interface Lease {
  readonly instance: AppInstance;
  /** 0 when a warm instance was reused; otherwise the instance's start-up time. */
  readonly coldStartMs: number;
  /** Hand the instance back: healthy ones stay warm for the next task, others are stopped. */
  release(healthy: boolean): void;
}

export interface InstancePool {
  /** A ready instance of the app pinned to exactly these GPUs, starting one if none is idle. */
  acquire(app: AppKey, gpuIndices: readonly number[], start: StartInstance, signal: AbortSignal): Promise<Lease>;
  /** App ids with at least one ready instance. */
  warmAppIds(): string[];
  /** Stops every instance. */
  shutdown(): Promise<void>;
}

interface Entry {
  readonly key: string;
  readonly appId: string;
  readonly version: number;
  readonly gpus: readonly number[];
  readonly instance: AppInstance;
  busy: boolean;
}

/**
 * Keeps app instances warm between tasks. An instance serves one prediction at
 * a time (Cog's default) and stays pinned to the GPUs it started on. Starting an
 * instance first stops idle instances of other apps (or older versions) on the
 * same GPUs, so their memory is free for it.
 */
export function createInstancePool(logger: Logger): InstancePool {
  const entries = new Set<Entry>();
  const keyOf = (app: AppKey, gpus: readonly number[]) => `${app.id}@${app.version}|${gpus.join(",")}`;

  const stop = (entry: Entry) => {
    entries.delete(entry);
    entry.instance.stop().catch((err) => logger.warn({ err, app: entry.appId }, "stopping app instance failed"));
  };

  return {
    async acquire(app, gpuIndices, start, signal) {
      const key = keyOf(app, gpuIndices);
      for (const entry of entries) {
        if (entry.key === key && !entry.busy) {
          entry.busy = true;
          return lease(entry, 0);
        }
      }
      for (const entry of [...entries]) {
        const overlaps = entry.gpus.some((g) => gpuIndices.includes(g));
        const stale = entry.appId === app.id && entry.version !== app.version;
        if (!entry.busy && (overlaps || stale)) stop(entry);
      }
      const instance = await start(gpuIndices, signal);
      const entry: Entry = { key, appId: app.id, version: app.version, gpus: [...gpuIndices], instance, busy: true };
      entries.add(entry);
      // An instance that dies while idle must not be handed out again.
      void instance.exited.then(() => entries.delete(entry));
      return lease(entry, instance.coldStartMs);
    },
    warmAppIds: () => [...new Set([...entries].map((e) => e.appId))].sort(),
    async shutdown() {
      const all = [...entries];
      entries.clear();
      await Promise.allSettled(all.map((e) => e.instance.stop()));
    },
  };

  function lease(entry: Entry, coldStartMs: number): Lease {
    let released = false;
    return {
      instance: entry.instance,
      coldStartMs,
      release(healthy) {
        if (released) return;
        released = true;
        entry.busy = false;
        if (!healthy) stop(entry);
      },
    };
  }
}
