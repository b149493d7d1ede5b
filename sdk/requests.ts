// Input shapes the SDK accepts, and their conversion to protobuf-es init shapes.
// They differ from the generated init shapes in two ways that matter to callers:
// 64-bit fields take a plain `number` as well as a `bigint`, and a runtime can be
// written as `{ docker: { image } }` instead of a oneof `{ kind: { case, value } }`.
import type { JsonObject, MessageInitShape } from "@bufbuild/protobuf";
import type { DeployAppRequestSchema, PoolPolicySchema, Runtime, RuntimeSchema, UpdateAppRequestSchema } from "../gen/ngpu/v1/app_pb.js";
import type { GpuRequirements, GpuRequirementsSchema } from "../gen/ngpu/v1/gpu_pb.js";
import type { ListNodesRequestSchema } from "../gen/ngpu/v1/node_pb.js";
import type { WebhookEventType } from "../gen/ngpu/v1/webhook_pb.js";
import type { ListTasksRequestSchema, SubmitTaskRequestSchema, TaskState } from "../gen/ngpu/v1/task_pb.js";

/** A 64-bit integer: a `number` (must be a safe integer) or a `bigint`. */
export type Int64Like = number | bigint;

/** Start the app as a local command on the worker; it must serve the Cog HTTP API on `$PORT`. */
export interface ProcessRuntimeInit {
  /** argv; the first element is the program. */
  readonly command: readonly string[];
  /** Working directory on the worker; default: the worker's own. */
  readonly workingDir?: string | undefined;
}

/** Run the app as a container image. */
export interface DockerRuntimeInit {
  readonly image: string;
  /** Port inside the container; default 5000 (Cog's). */
  readonly port?: number | undefined;
}

/** Run inside the worker itself, with no app server ("echo", "sleep"): for probes, tests and benchmarks. */
export interface BuiltinRuntimeInit {
  readonly name: string;
}

/** How the worker starts the app: the short forms, or a generated `Runtime` message (e.g. from `App.runtime`). */
export type RuntimeInit =
  | { readonly process: ProcessRuntimeInit }
  | { readonly docker: DockerRuntimeInit }
  | { readonly builtin: BuiltinRuntimeInit }
  | Runtime;

/** What an app needs from the GPUs it runs on. */
export interface GpuRequirementsInit {
  /** GPUs per task instance; 0 runs without reserving a GPU. Default 0. */
  readonly count?: number | undefined;
  /** Minimum memory of each GPU, in bytes; 0 (default) means any. */
  readonly minMemoryBytes?: Int64Like | undefined;
  /** Exact product names (case-insensitive) that fit; empty (default) means any. */
  readonly allowedModels?: readonly string[] | undefined;
}

/** Create an app, or a new version of the app with the same name. */
export interface DeployAppInit {
  /** Lowercase letters, digits and dashes; unique within the workspace. */
  readonly name: string;
  readonly runtime: RuntimeInit;
  readonly gpu?: GpuRequirementsInit | GpuRequirements | undefined;
  /** Extra environment for the app instance. */
  readonly env?: Readonly<Record<string, string>> | undefined;
  /** JSON Schema of the input; default: learnt from the app's /openapi.json. */
  readonly inputSchema?: JsonObject | undefined;
  /** Default execution timeout per task, in ms; 0 (default) means the platform default. */
  readonly timeoutMs?: Int64Like | undefined;
  readonly description?: string | undefined;
  /** Tries per task at most (1..10), lost attempts included; 0 (default) means 3. */
  readonly maxAttempts?: number | undefined;
  /** A task queued longer than this (ms) ends EXPIRED; 0 (default) means never. */
  readonly queueTtlMs?: Int64Like | undefined;
  /** Keep an elastic pool of nodes for the app; default none (tasks run on any free node). */
  readonly pool?: PoolPolicyInit | undefined;
}

/** An app's pool: see PoolPolicy in app.proto. */
export interface PoolPolicyInit {
  /** Nodes kept warm when idle; 0 (default) lets the pool scale to zero. */
  readonly minNodes?: number | undefined;
  /** Hard cap on nodes running the app's tasks; at least 1. */
  readonly maxNodes: number;
  /** A node idle this long (ms) leaves the pool, down to minNodes. Default 0. */
  readonly idleTimeoutMs?: Int64Like | undefined;
  /** Scale up when the oldest waiting task has waited this long (ms). */
  readonly targetQueueDelayMs?: Int64Like | undefined;
  /** Or: scale up when queued + running tasks per node exceed this. */
  readonly targetTasksPerNode?: number | undefined;
  /** Nodes added per autoscaler round at most; 0 (default): no limit. */
  readonly scaleUpStep?: number | undefined;
  /** Nodes released per autoscaler round at most; 0 (default) means 1. */
  readonly scaleDownStep?: number | undefined;
}

export function poolInit(pool: PoolPolicyInit): MessageInitShape<typeof PoolPolicySchema> {
  return {
    minNodes: pool.minNodes ?? 0,
    maxNodes: pool.maxNodes,
    idleTimeoutMs: toInt64(pool.idleTimeoutMs ?? 0, "pool.idleTimeoutMs"),
    targetQueueDelayMs: toInt64(pool.targetQueueDelayMs ?? 0, "pool.targetQueueDelayMs"),
    targetTasksPerNode: pool.targetTasksPerNode ?? 0,
    scaleUpStep: pool.scaleUpStep ?? 0,
    scaleDownStep: pool.scaleDownStep ?? 0,
  };
}

/** Change some fields of an app; fields left undefined keep their value. */
export interface UpdateAppInit {
  /** App id or name. */
  readonly app: string;
  readonly runtime?: RuntimeInit | undefined;
  readonly gpu?: GpuRequirementsInit | GpuRequirements | undefined;
  /** Merged into the app's env, or replacing it when `replaceEnv` is true. */
  readonly env?: Readonly<Record<string, string>> | undefined;
  readonly replaceEnv?: boolean | undefined;
  /** Default execution timeout per task, in ms. */
  readonly timeoutMs?: Int64Like | undefined;
  readonly description?: string | undefined;
  readonly maxAttempts?: number | undefined;
  readonly queueTtlMs?: Int64Like | undefined;
  /** Published: any workspace may call it, paying for its own calls. */
  readonly public?: boolean | undefined;
  /** Charged to other workspaces per successful call and credited to you, in nano-USD (at most 1 USD). */
  readonly callFeeNanoUsd?: Int64Like | undefined;
  /** Sets the pool policy (no new version). */
  readonly pool?: PoolPolicyInit | undefined;
  /** Removes the pool: its nodes are released. */
  readonly removePool?: boolean | undefined;
}

/** A task to queue. */
export interface SubmitTaskInit {
  /** App id or name. */
  readonly app: string;
  /** Input for the app (Cog: the "input" object); any JSON object. */
  readonly input?: JsonObject | undefined;
  /** Up to 128 characters; a repeat within the workspace returns the first task. */
  readonly idempotencyKey?: string | undefined;
  /** Higher runs first; -1000..1000, default 0. */
  readonly priority?: number | undefined;
  readonly labels?: Readonly<Record<string, string>> | undefined;
  /** Execution timeout for this task, in ms; 0 (default) uses the app's. */
  readonly timeoutMs?: Int64Like | undefined;
  /** Tries at most (1..10); 0 (default) uses the app's. */
  readonly maxAttempts?: number | undefined;
  /** Queue time-to-live in ms; 0 (default) uses the app's. */
  readonly queueTtlMs?: Int64Like | undefined;
  /** POST this task's events to a URL; the result carries the webhook with its signing secret. */
  readonly webhook?: { readonly url: string; readonly events?: readonly WebhookEventType[] | undefined } | undefined;
  /** Spend cap across all attempts, in nano-USD; at the cap the task is cancelled and billed up to it. Default none. */
  readonly maxCostNanoUsd?: Int64Like | undefined;
}

/** Paging of a list call. */
export interface PageInit {
  /** 1..500; default: the server's (50 for apps and tasks, 100 for nodes). */
  readonly pageSize?: number | undefined;
  /** `nextPageToken` of the previous page; "" (default) for the first. */
  readonly pageToken?: string | undefined;
}

/** Filters of `tasks.list`. Tasks come newest first. */
export interface ListTasksInit extends PageInit {
  /** Only tasks of this app (id or name). */
  readonly app?: string | undefined;
  /** Only tasks in one of these states. */
  readonly states?: readonly TaskState[] | undefined;
  /** Only tasks carrying all these labels. */
  readonly labels?: Readonly<Record<string, string>> | undefined;
}

/** Filters of `nodes.list`. */
export interface ListNodesInit extends PageInit {
  /** Include nodes that are offline or lost; default false. */
  readonly includeOffline?: boolean | undefined;
}

/** Converts an Int64Like to a bigint, refusing numbers that would lose precision. */
export function toInt64(value: Int64Like, field: string): bigint {
  if (typeof value === "bigint") return value;
  if (!Number.isSafeInteger(value)) throw new TypeError(`${field} must be a safe integer, got ${value}`);
  return BigInt(value);
}

function isRuntimeMessage(runtime: RuntimeInit): runtime is Runtime {
  return "kind" in runtime;
}

function isGpuMessage(gpu: GpuRequirementsInit | GpuRequirements): gpu is GpuRequirements {
  return "$typeName" in gpu;
}

/** Converts the short runtime forms to the generated oneof. */
export function runtimeInit(runtime: RuntimeInit): MessageInitShape<typeof RuntimeSchema> {
  if (isRuntimeMessage(runtime)) return runtime;
  if ("process" in runtime) {
    const { command, workingDir } = runtime.process;
    return { kind: { case: "process", value: { command: [...command], workingDir: workingDir ?? "" } } };
  }
  if ("builtin" in runtime) return { kind: { case: "builtin", value: { name: runtime.builtin.name } } };
  const { image, port } = runtime.docker;
  return { kind: { case: "docker", value: { image, port: port ?? 0 } } };
}

/** Converts GPU requirements to their generated init shape. */
export function gpuInit(gpu: GpuRequirementsInit | GpuRequirements): MessageInitShape<typeof GpuRequirementsSchema> {
  if (isGpuMessage(gpu)) return gpu;
  return {
    count: gpu.count ?? 0,
    minMemoryBytes: toInt64(gpu.minMemoryBytes ?? 0, "gpu.minMemoryBytes"),
    allowedModels: [...(gpu.allowedModels ?? [])],
  };
}

export function deployAppRequest(init: DeployAppInit): MessageInitShape<typeof DeployAppRequestSchema> {
  const request: MessageInitShape<typeof DeployAppRequestSchema> = {
    name: init.name,
    runtime: runtimeInit(init.runtime),
    env: { ...init.env },
    timeoutMs: toInt64(init.timeoutMs ?? 0, "timeoutMs"),
    description: init.description ?? "",
    maxAttempts: init.maxAttempts ?? 0,
    queueTtlMs: toInt64(init.queueTtlMs ?? 0, "queueTtlMs"),
  };
  if (init.gpu !== undefined) request.gpu = gpuInit(init.gpu);
  if (init.inputSchema !== undefined) request.inputSchema = init.inputSchema;
  if (init.pool !== undefined) request.pool = poolInit(init.pool);
  return request;
}

export function updateAppRequest(init: UpdateAppInit): MessageInitShape<typeof UpdateAppRequestSchema> {
  const request: MessageInitShape<typeof UpdateAppRequestSchema> = {
    app: init.app,
    env: { ...init.env },
    replaceEnv: init.replaceEnv ?? false,
  };
  if (init.runtime !== undefined) request.runtime = runtimeInit(init.runtime);
  if (init.gpu !== undefined) request.gpu = gpuInit(init.gpu);
  if (init.timeoutMs !== undefined) request.timeoutMs = toInt64(init.timeoutMs, "timeoutMs");
  if (init.description !== undefined) request.description = init.description;
  if (init.maxAttempts !== undefined) request.maxAttempts = init.maxAttempts;
  if (init.queueTtlMs !== undefined) request.queueTtlMs = toInt64(init.queueTtlMs, "queueTtlMs");
  if (init.public !== undefined) request.public = init.public;
  if (init.callFeeNanoUsd !== undefined) request.callFeeNanoUsd = toInt64(init.callFeeNanoUsd, "callFeeNanoUsd");
  if (init.pool !== undefined) request.pool = poolInit(init.pool);
  if (init.removePool) request.removePool = true;
  return request;
}

export function submitTaskRequest(init: SubmitTaskInit): MessageInitShape<typeof SubmitTaskRequestSchema> {
  const request: MessageInitShape<typeof SubmitTaskRequestSchema> = {
    app: init.app,
    idempotencyKey: init.idempotencyKey ?? "",
    priority: init.priority ?? 0,
    labels: { ...init.labels },
    timeoutMs: toInt64(init.timeoutMs ?? 0, "timeoutMs"),
    maxAttempts: init.maxAttempts ?? 0,
    queueTtlMs: toInt64(init.queueTtlMs ?? 0, "queueTtlMs"),
    maxCostNanoUsd: toInt64(init.maxCostNanoUsd ?? 0, "maxCostNanoUsd"),
  };
  if (init.input !== undefined) request.input = init.input;
  if (init.webhook !== undefined) request.webhook = { url: init.webhook.url, events: [...(init.webhook.events ?? [])] };
  return request;
}

export function listTasksRequest(init: ListTasksInit): MessageInitShape<typeof ListTasksRequestSchema> {
  return {
    pageSize: init.pageSize ?? 0,
    pageToken: init.pageToken ?? "",
    app: init.app ?? "",
    states: [...(init.states ?? [])],
    labels: { ...init.labels },
  };
}

export function listNodesRequest(init: ListNodesInit): MessageInitShape<typeof ListNodesRequestSchema> {
  return { pageSize: init.pageSize ?? 0, pageToken: init.pageToken ?? "", includeOffline: init.includeOffline ?? false };
}
