import type { Logger } from "../log.js";
import type { AppInstance } from "./app-instance.js";
import type { BuiltinInstance } from "./builtin.js";

/** What the pool needs to know about an app to start or reuse an instance of it. */
export interface AppKey {
  readonly id: string;
  readonly version: number;
}

/** An instance of any runtime: an app server speaking Cog HTTP, or a builtin run inside the worker. */
export type Instance = AppInstance | BuiltinInstance;

export type StartInstance = (gpuIndices: readonly number[], signal: AbortSignal) => Promise<Instance>;

export interface Lease {
  readonly instance: Instance;
  /** 0 when a ready instance was reused; otherwise how long this task waited for one to start. */
  readonly coldStartMs: number;
  /** Hand the instance back: healthy ones stay warm for the next task, others are stopped. */
  release(healthy: boolean): void;
}

export interface InstancePool {
  /** A ready instance of the app pinned to exactly these GPUs, starting one if none is idle. */
  acquire(app: AppKey, gpuIndices: readonly number[], start: StartInstance, signal: AbortSignal): Promise<Lease>;
  /**
   * Starts an instance ahead of tasks (the node joined the app's pool) and keeps it idle.
   * Resolves with it and its cold start (0 when one was already there), or undefined when
   * another warm-up of it is under way.
   */
  warm(app: AppKey, gpuIndices: readonly number[], start: StartInstance, signal: AbortSignal): Promise<{ instance: Instance; coldStartMs: number } | undefined>;
  /** Stops the app's idle instances; busy ones stop when their task ends. */
  releaseApp(appId: string): void;
  /** Whether an idle ready instance of the app on these GPUs is there now. */
  hasIdle(app: AppKey, gpuIndices: readonly number[]): boolean;
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
  readonly instance: Instance;
  busy: boolean;
  /** The node left the app's pool while this instance was busy: stop it once it is free. */
  stopWhenFree: boolean;
}

/**
 * Keeps app instances warm between tasks. An instance serves one prediction at
 * a time (Cog's default) and stays pinned to the GPUs it started on. Starting an
 * instance first stops idle instances of other apps (or older versions) on the
 * same GPUs, so their memory is free for it. A task that arrives while the same
 * instance is being warmed waits for that start instead of starting another.
 */
export function createInstancePool(logger: Logger): InstancePool {
  const entries = new Set<Entry>();
  const starting = new Map<string, Promise<Entry | undefined>>();
  const keyOf = (app: AppKey, gpus: readonly number[]) => `${app.id}@${app.version}|${gpus.join(",")}`;

  const stop = (entry: Entry) => {
    entries.delete(entry);
    entry.instance.stop().catch((err) => logger.warn({ err, app: entry.appId }, "stopping app instance failed"));
  };
  const idleOf = (key: string) => [...entries].find((e) => e.key === key && !e.busy);

  function startEntry(app: AppKey, gpuIndices: readonly number[], start: StartInstance, signal: AbortSignal, busy: boolean): Promise<Entry> {
    const key = keyOf(app, gpuIndices);
    for (const entry of [...entries]) {
      const overlaps = entry.gpus.some((g) => gpuIndices.includes(g));
      const stale = entry.appId === app.id && entry.version !== app.version;
      if (!entry.busy && (overlaps || stale)) stop(entry);
    }
    const started = start(gpuIndices, signal).then((instance) => {
      const entry: Entry = { key, appId: app.id, version: app.version, gpus: [...gpuIndices], instance, busy, stopWhenFree: false };
      entries.add(entry);
      // An instance that dies while idle must not be handed out again.
      void instance.exited.then(() => entries.delete(entry));
      return entry;
    });
    const shared = started.catch(() => undefined);
    starting.set(key, shared);
    void shared.finally(() => {
      if (starting.get(key) === shared) starting.delete(key);
    });
    return started;
  }

  return {
    async acquire(app, gpuIndices, start, signal) {
      const key = keyOf(app, gpuIndices);
      const idle = idleOf(key);
      if (idle) {
        idle.busy = true;
        return lease(idle, 0);
      }
      const inFlight = starting.get(key);
      if (inFlight) {
        const t0 = performance.now();
        const entry = await inFlight;
        if (entry && entries.has(entry) && !entry.busy) {
          entry.busy = true;
          return lease(entry, performance.now() - t0);
        }
      }
      const entry = await startEntry(app, gpuIndices, start, signal, true);
      return lease(entry, entry.instance.coldStartMs);
    },
    async warm(app, gpuIndices, start, signal) {
      const key = keyOf(app, gpuIndices);
      const existing = [...entries].filter((e) => e.key === key);
      for (const e of existing) e.stopWhenFree = false;
      if (existing[0]) return { instance: existing[0].instance, coldStartMs: 0 };
      if (starting.has(key)) return undefined;
      const entry = await startEntry(app, gpuIndices, start, signal, false);
      return { instance: entry.instance, coldStartMs: entry.instance.coldStartMs };
    },
    releaseApp(appId) {
      for (const entry of [...entries]) {
        if (entry.appId !== appId) continue;
        if (entry.busy) entry.stopWhenFree = true;
        else stop(entry);
      }
    },
    hasIdle: (app, gpuIndices) => idleOf(keyOf(app, gpuIndices)) !== undefined,
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
        if (!healthy || entry.stopWhenFree) stop(entry);
      },
    };
  }
}
