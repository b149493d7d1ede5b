import { create, fromJson, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import { timestampFromDate, ValueSchema } from "@bufbuild/protobuf/wkt";
import { type App, AppSchema, type PoolPolicy, PoolPolicySchema } from "../../gen/ngpu/v1/app_pb.js";
import { type GpuTelemetry, GpuSchema } from "../../gen/ngpu/v1/gpu_pb.js";
import { type Node, NodeSchema, NodeState } from "../../gen/ngpu/v1/node_pb.js";
import { type Attempt, AttemptSchema, type Task, TaskSchema, TaskState } from "../../gen/ngpu/v1/task_pb.js";
import { type Price, PriceSchema, type UsageRecord, UsageRecordSchema, type UsageTotals, UsageTotalsSchema } from "../../gen/ngpu/v1/usage_pb.js";
import type { PriceRow } from "../db/prices.js";
import type { AppRow, AttemptRow, NodeRow, PoolPolicyRow, RuntimeRow, UsageRecordRow } from "../db/schema.js";
import type { UsageSums } from "../metering/summaries.js";
import type { TaskView } from "../db/tasks.js";
import { reliability } from "../db/nodes.js";
import { runtimeToProto } from "../dispatch/assignment.js";

/** Rows to API messages: the one place the storage shape meets the contract. */

const TASK_STATES: Record<string, TaskState> = {
  QUEUED: TaskState.QUEUED,
  ASSIGNED: TaskState.ASSIGNED,
  STARTING: TaskState.STARTING,
  RUNNING: TaskState.RUNNING,
  SUCCEEDED: TaskState.SUCCEEDED,
  FAILED: TaskState.FAILED,
  CANCELLED: TaskState.CANCELLED,
  TIMED_OUT: TaskState.TIMED_OUT,
  EXPIRED: TaskState.EXPIRED,
};

export function taskStateToProto(state: string): TaskState {
  return TASK_STATES[state] ?? TaskState.UNSPECIFIED;
}

export function taskStateFromProto(state: TaskState): string | undefined {
  return Object.entries(TASK_STATES).find(([, v]) => v === state)?.[0];
}

const ts = (d: Date | null) => (d ? timestampFromDate(d) : undefined);

export function taskToProto(row: TaskView): Task {
  const end = row.ended_at ?? undefined;
  const queueEnd = row.assigned_at ?? end ?? new Date();
  return create(TaskSchema, {
    id: row.id,
    workspaceId: row.workspace_id,
    appId: row.app_id,
    appName: row.app_name,
    state: taskStateToProto(row.state),
    input: row.input as JsonObject,
    ...(row.output !== null && row.output !== undefined ? { output: fromJson(ValueSchema, row.output as JsonValue) } : {}),
    error: row.error,
    ...(row.progress ? { progress: row.progress } : {}),
    priority: row.priority,
    labels: row.labels,
    idempotencyKey: row.idempotency_key ?? "",
    createTime: timestampFromDate(row.created_at),
    assignTime: ts(row.assigned_at),
    startTime: ts(row.started_at),
    endTime: ts(row.ended_at),
    attemptCount: row.attempt_count,
    nodeId: row.node_id ?? "",
    gpuIndices: row.gpu_indices,
    queueMs: BigInt(Math.max(0, queueEnd.getTime() - row.created_at.getTime())),
    coldStartMs: BigInt(row.cold_start_ms),
    executionMs: BigInt(row.execution_ms),
    gpuMs: BigInt(row.gpu_ms),
    timeoutMs: BigInt(row.timeout_ms),
    maxAttempts: row.max_attempts,
    expireTime: ts(row.expires_at),
    maxCostNanoUsd: BigInt(row.max_cost_nano_usd ?? 0),
  });
}

export function attemptToProto(row: AttemptRow): Attempt {
  return create(AttemptSchema, {
    id: row.id,
    nodeId: row.node_id,
    state: row.state,
    gpuIndices: row.gpu_indices,
    createTime: timestampFromDate(row.created_at),
    startTime: ts(row.started_at),
    endTime: ts(row.ended_at),
    coldStartMs: BigInt(row.cold_start_ms),
    gpuMs: BigInt(row.gpu_ms),
    error: row.error,
  });
}

export function appToProto(row: AppRow): App {
  return create(AppSchema, {
    id: row.id,
    workspaceId: row.workspace_id,
    name: row.name,
    version: row.version,
    description: row.description,
    runtime: runtimeToProto(row.runtime as RuntimeRow),
    gpu: { count: row.gpu_count, minMemoryBytes: BigInt(row.gpu_min_memory_bytes), allowedModels: row.gpu_models },
    env: row.env,
    ...(row.input_schema ? { inputSchema: row.input_schema as JsonObject } : {}),
    timeoutMs: BigInt(row.timeout_ms),
    maxAttempts: row.max_attempts,
    queueTtlMs: BigInt(row.queue_ttl_ms),
    public: row.public,
    callFeeNanoUsd: BigInt(row.call_fee_nano_usd),
    createTime: timestampFromDate(row.created_at),
    updateTime: timestampFromDate(row.updated_at),
    ...(row.pool_policy ? { pool: poolPolicyToProto(row.pool_policy) } : {}),
  });
}

export function poolPolicyToProto(p: PoolPolicyRow): PoolPolicy {
  return create(PoolPolicySchema, {
    minNodes: p.minNodes,
    maxNodes: p.maxNodes,
    idleTimeoutMs: BigInt(p.idleTimeoutMs),
    targetQueueDelayMs: BigInt(p.targetQueueDelayMs),
    targetTasksPerNode: p.targetTasksPerNode,
    scaleUpStep: p.scaleUpStep,
    scaleDownStep: p.scaleDownStep,
  });
}

const NODE_STATES: Record<string, NodeState> = {
  ONLINE: NodeState.ONLINE,
  REVOKED: NodeState.REVOKED,
  DRAINING: NodeState.DRAINING,
  OFFLINE: NodeState.OFFLINE,
  LOST: NodeState.LOST,
};

export function nodeToProto(
  row: NodeRow,
  live: { telemetry: readonly GpuTelemetry[]; busyGpuIndices: ReadonlySet<number>; runningTasks: number },
): Node {
  return create(NodeSchema, {
    id: row.id,
    name: row.name,
    state: NODE_STATES[row.state] ?? NodeState.UNSPECIFIED,
    gpus: row.gpus.map((g) =>
      create(GpuSchema, {
        index: g.index,
        uuid: g.uuid,
        model: g.model,
        memoryTotalBytes: BigInt(g.memoryTotalBytes),
        driverVersion: g.driverVersion,
        pciBusId: g.pciBusId,
        migEnabled: g.migEnabled,
        simulated: g.simulated,
      }),
    ),
    telemetry: [...live.telemetry],
    gpuError: row.gpu_error,
    runtimes: row.runtimes,
    warmAppIds: row.warm_app_ids,
    runningTasks: live.runningTasks,
    freeGpuIndices: row.gpus.map((g) => g.index).filter((i) => !live.busyGpuIndices.has(i)),
    workerVersion: row.worker_version,
    connectTime: ts(row.connected_at),
    lastHeartbeatTime: ts(row.last_heartbeat_at),
    maxConcurrentTasks: row.max_concurrent_tasks,
    completedAttempts: BigInt(row.completed_attempts),
    lostAttempts: BigInt(row.lost_attempts),
    reliability: reliability(row),
  });
}

export function usageTotalsToProto(s: UsageSums): UsageTotals {
  return create(UsageTotalsSchema, {
    submitted: s.submitted,
    attempts: s.attempts,
    succeeded: s.succeeded,
    failed: s.failed,
    cancelled: s.cancelled,
    timedOut: s.timedOut,
    lost: s.lost,
    released: s.released,
    gpuMs: s.gpuMs,
    costNanoUsd: s.costNanoUsd,
    feeNanoUsd: s.feeNanoUsd,
    totalNanoUsd: s.costNanoUsd + s.feeNanoUsd,
    providerNanoUsd: s.providerNanoUsd,
  });
}

export function usageRecordToProto(r: UsageRecordRow): UsageRecord {
  return create(UsageRecordSchema, {
    attemptId: r.attempt_id,
    taskId: r.task_id,
    workspaceId: r.workspace_id,
    appId: r.app_id,
    nodeId: r.node_id,
    gpuModel: r.gpu_model,
    gpuCount: r.gpu_count,
    outcome: r.outcome,
    startTimeMs: BigInt(r.started_at_ms ?? 0),
    endTimeMs: BigInt(r.ended_at_ms),
    executionMs: BigInt(r.execution_ms),
    gpuMs: BigInt(r.gpu_ms),
    ...(r.worker_execution_ms !== null ? { workerExecutionMs: BigInt(r.worker_execution_ms) } : {}),
    ...(r.control_plane_execution_ms !== null ? { controlPlaneExecutionMs: BigInt(r.control_plane_execution_ms) } : {}),
    ...(r.disagreement_ms !== null ? { disagreementMs: BigInt(r.disagreement_ms) } : {}),
    priceNanoUsdPerGpuSecond: BigInt(r.price_nano_usd_per_gpu_second),
    costNanoUsd: BigInt(r.cost_nano_usd),
    feeNanoUsd: BigInt(r.fee_nano_usd),
    totalNanoUsd: BigInt(r.cost_nano_usd) + BigInt(r.fee_nano_usd),
  });
}

export function priceToProto(p: PriceRow): Price {
  return create(PriceSchema, {
    gpuModel: p.gpuModel,
    nanoUsdPerGpuSecond: BigInt(p.nanoUsdPerGpuSecond),
    effectiveTime: timestampFromDate(p.effectiveFrom),
    inForce: p.inForce,
  });
}
