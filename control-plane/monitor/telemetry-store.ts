import type { GpuTelemetry } from "../../gen/ngpu/v1/gpu_pb.js";

/**
 * The latest reading of every GPU, in memory: the API answers node queries
 * from here without touching the database. Every replica fills its own copy
 * from the telemetry subjects on the bus.
 */
export interface TelemetryStore {
  ingest(nodeId: string, readings: readonly GpuTelemetry[]): void;
  /** The latest reading of each GPU of the node; a node that left keeps its last ones (one entry per GPU ever seen). */
  latest(nodeId: string): GpuTelemetry[];
}

export function createTelemetryStore(): TelemetryStore {
  const byNode = new Map<string, Map<number, GpuTelemetry>>();
  return {
    ingest(nodeId, readings) {
      let gpus = byNode.get(nodeId);
      if (!gpus) byNode.set(nodeId, (gpus = new Map()));
      for (const r of readings) gpus.set(r.index, r);
    },
    latest(nodeId) {
      return [...(byNode.get(nodeId)?.values() ?? [])].sort((a, b) => a.index - b.index);
    },
  };
}
