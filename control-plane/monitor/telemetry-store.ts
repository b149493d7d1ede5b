import type { GpuTelemetry } from "../../gen/ngpu/v1/gpu_pb.js";

/**
 * The latest reading of every GPU, in memory: the API answers node queries
 * from here without touching the database. Every replica fills its own copy
 * from the telemetry subjects on the bus.
 */
export interface TelemetryStore {
  ingest(nodeId: string, readings: readonly GpuTelemetry[]): void;
  latest(nodeId: string): GpuTelemetry[];
  forget(nodeId: string): void;
  /** GPUs with a reading, over all nodes. */
  size(): number;
}

export function createTelemetryStore(): TelemetryStore {
  const byNode = new Map<string, Map<number, GpuTelemetry>>();
  let count = 0;
  return {
    ingest(nodeId, readings) {
      let gpus = byNode.get(nodeId);
      if (!gpus) byNode.set(nodeId, (gpus = new Map()));
      for (const r of readings) {
        if (!gpus.has(r.index)) count++;
        gpus.set(r.index, r);
      }
    },
    latest(nodeId) {
      return [...(byNode.get(nodeId)?.values() ?? [])].sort((a, b) => a.index - b.index);
    },
    forget(nodeId) {
      count -= byNode.get(nodeId)?.size ?? 0;
      byNode.delete(nodeId);
    },
    size: () => count,
  };
}
