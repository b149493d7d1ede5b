import { create, fromJson, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import { timestampFromDate, ValueSchema } from "@bufbuild/protobuf/wkt";
import { type App, AppSchema } from "../../gen/ngpu/v1/app_pb.js";
import { type GpuTelemetry, GpuSchema } from "../../gen/ngpu/v1/gpu_pb.js";
import { type Node, NodeSchema, NodeState } from "../../gen/ngpu/v1/node_pb.js";
import { type Attempt, AttemptSchema, type Task, TaskSchema, TaskState } from "../../gen/ngpu/v1/task_pb.js";
import type { AppRow, AttemptRow, NodeRow, RuntimeRow } from "../db/schema.js";
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
