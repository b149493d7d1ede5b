// Messages between the bench and its child processes.

/** bench → worker process */
export type ToWorkers = { type: "stop" };
/** worker process → bench */
export type FromWorkers =
  | { type: "ready"; nodeIds: string[]; startMs: number }
  | { type: "failed"; error: string }
  | { type: "stopped"; cpuS: number };

/** bench → telemetry load generator */
export type ToLoad =
  | { type: "grow"; nodes: number }
  | { type: "stats" }
  | { type: "stop" };
/** telemetry load generator → bench */
export type FromLoad =
  | { type: "grown"; nodes: number; welcomed: number; failed: number; ms: number }
  | { type: "stats"; stats: LoadStats }
  | { type: "stopped" };

export interface LoadStats {
  /** When these were read (wall clock, ms). */
  readonly atMs: number;
  /** Nodes with an open, welcomed stream. */
  readonly open: number;
  /** Telemetry reports and GPU readings sent so far, and heartbeats. */
  readonly reports: number;
  readonly readings: number;
  readonly heartbeats: number;
  /** Bytes written but not yet taken by the HTTP/2 layer (backpressure from the control plane). */
  readonly buffered: number;
  /** Rejections and stream errors seen. */
  readonly rejections: number;
  readonly streamErrors: number;
  /** Reports not sent because the stream had too much unsent data. */
  readonly skipped: number;
  /** Largest lateness of a send against its schedule, ms, since the last stats call. */
  readonly maxLateMs: number;
  /** CPU seconds the generator used so far. */
  readonly cpuS: number;
}

export function isType<T extends { type: string }, K extends T["type"]>(type: K): (m: T) => m is Extract<T, { type: K }> {
  return (m: T): m is Extract<T, { type: K }> => m.type === type;
}

/** bench → control-plane process */
export type ToCp = { type: "stats" } | { type: "wake" } | { type: "stop" };
/** control-plane process → bench */
export type FromCp =
  | { type: "ready"; url: string; apiKey: string; enrollmentToken: string }
  | { type: "failed"; error: string }
  | { type: "stats"; stats: CpStats }
  | { type: "stopped" };

export interface CpStats {
  /** When these were read (wall clock, ms). */
  readonly atMs: number;
  /** CPU seconds the control-plane process used so far, and the kernel's part of them. */
  readonly cpuS: number;
  readonly cpuSystemS: number;
  readonly rssBytes: number;
  /** Event-loop delay since the previous stats call. */
  readonly eventLoopDelayMs: { readonly p50: number; readonly p99: number; readonly max: number };
  readonly warnings: number;
  readonly firstWarnings: string[];
  /** Worker streams this control plane holds. */
  readonly connectedNodes: number;
  readonly telemetry: {
    /** GPUs of connected nodes with a reading in the in-memory store. */
    readonly gpus: number;
    /** Of those, readings older than 2 s (by the reading's own timestamp). */
    readonly staleOver2s: number;
    readonly maxAgeMs: number;
    /** Readings ingested into the store so far. */
    readonly ingestedReadings: number;
  };
}
