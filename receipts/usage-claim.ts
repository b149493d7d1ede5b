import { canonicalJson } from "./canonical-json.js";

/**
 * What a worker measured for one attempt and signs with its node key: shared
 * by the worker (signs), the control plane (checks, keeps) and the verifier.
 */
export interface UsageClaim {
  readonly taskId: string;
  readonly attemptId: string;
  /** UUIDs of the GPUs the attempt held. */
  readonly gpuUuids: readonly string[];
  /** Execution start and end on the worker's clock, Unix ms. */
  readonly startedAtMs: number;
  readonly endedAtMs: number;
  readonly gpuMs: number;
}

const CONTEXT = "ngpu-usage-claim-v1\n";

/** The bytes a worker signs for a claim. */
export function usageClaimBytes(claim: UsageClaim): Uint8Array {
  return new TextEncoder().encode(
    CONTEXT +
      canonicalJson({
        taskId: claim.taskId,
        attemptId: claim.attemptId,
        gpuUuids: [...claim.gpuUuids],
        startedAtMs: claim.startedAtMs,
        endedAtMs: claim.endedAtMs,
        gpuMs: claim.gpuMs,
      }),
  );
}
