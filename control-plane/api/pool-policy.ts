import type { PoolPolicy } from "../../gen/ngpu/v1/app_pb.js";
import type { PoolPolicyRow } from "../db/schema.js";
import { invalidArgument } from "../errors.js";

/** Most nodes one app's pool may hold. */
export const MAX_POOL_NODES = 10_000;
/** Longest idle timeout and target queue delay (7 days). */
const MAX_POOL_MS = 7 * 24 * 3600 * 1000;

function count(field: string, value: number, min: number): number {
  if (!Number.isInteger(value) || value < min) throw invalidArgument(field, `must be at least ${min}`);
  if (value > MAX_POOL_NODES) throw invalidArgument(field, `must be at most ${MAX_POOL_NODES}`);
  return value;
}

function duration(field: string, value: bigint): number {
  if (value < 0n) throw invalidArgument(field, "must not be negative");
  if (value > BigInt(MAX_POOL_MS)) throw invalidArgument(field, `must be at most ${MAX_POOL_MS} ms (7 days)`);
  return Number(value);
}

/**
 * Checks a pool policy and resolves its defaults (0 steps). Each problem is an
 * INVALID_ARGUMENT naming the field, e.g. `pool.min_nodes: must not exceed max_nodes (2)`.
 */
export function checkPoolPolicy(field: string, policy: PoolPolicy): PoolPolicyRow {
  const minNodes = count(`${field}.min_nodes`, policy.minNodes, 0);
  if (policy.maxNodes === 0 && minNodes > 0) {
    throw invalidArgument(`${field}.max_nodes`, `is 0 but min_nodes is ${minNodes}: max_nodes must be at least min_nodes`);
  }
  const maxNodes = count(`${field}.max_nodes`, policy.maxNodes, 1);
  if (minNodes > maxNodes) throw invalidArgument(`${field}.min_nodes`, `must not exceed max_nodes (${maxNodes})`);
  const idleTimeoutMs = duration(`${field}.idle_timeout_ms`, policy.idleTimeoutMs);
  const targetQueueDelayMs = duration(`${field}.target_queue_delay_ms`, policy.targetQueueDelayMs);
  if (policy.targetTasksPerNode < 0) throw invalidArgument(`${field}.target_tasks_per_node`, "must not be negative");
  const targetTasksPerNode = count(`${field}.target_tasks_per_node`, policy.targetTasksPerNode, 0);
  if (targetQueueDelayMs === 0 && targetTasksPerNode === 0) {
    throw invalidArgument(`${field}.target_queue_delay_ms`, "set a scaling signal: target_queue_delay_ms > 0 or target_tasks_per_node > 0");
  }
  if (policy.scaleUpStep < 0) throw invalidArgument(`${field}.scale_up_step`, "must not be negative (0 means no limit)");
  if (policy.scaleDownStep < 0) throw invalidArgument(`${field}.scale_down_step`, "must not be negative (0 means 1)");
  return {
    minNodes,
    maxNodes,
    idleTimeoutMs,
    targetQueueDelayMs,
    targetTasksPerNode,
    scaleUpStep: policy.scaleUpStep === 0 ? maxNodes : count(`${field}.scale_up_step`, policy.scaleUpStep, 1),
    scaleDownStep: policy.scaleDownStep === 0 ? 1 : count(`${field}.scale_down_step`, policy.scaleDownStep, 1),
  };
}
