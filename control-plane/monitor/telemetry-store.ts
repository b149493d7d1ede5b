import type { GpuTelemetry } from "../../gen/ngpu/v1/gpu_pb.js";

/**
 * The latest reading of every GPU, in memory: the API answers node queries
 * from here without touching the database. Every replica fills its own copy
 * from the telemetry subjects on the bus.
 */
export interface TelemetryStore {
  /** A node's report replaces what was known of it: a failed read (no readings) clears it. */
  ingest(nodeId: string, readings: readonly GpuTelemetry[]): void;
  /** The node's readings, unless they are older than maxAgeMs (a stale number is a wrong number). */
  latest(nodeId: string, maxAgeMs?: number): GpuTelemetry[];
}

/** Readings older than this are not shown (the worker sends one a second). */
export const DEFAULT_MAX_READING_AGE_MS = 10_000;

export function createTelemetryStore(): TelemetryStore {
  const byNode = new Map<string, { at: number; readings: GpuTelemetry[] }>();
  return {
    ingest(nodeId, readings) {
      byNode.set(nodeId, { at: Date.now(), readings: [...readings].sort((a, b) => a.index - b.index) });
    },
    latest(nodeId, maxAgeMs = DEFAULT_MAX_READING_AGE_MS) {
      const entry = byNode.get(nodeId);
      return entry && Date.now() - entry.at <= maxAgeMs ? entry.readings : [];
    },
  };
}
