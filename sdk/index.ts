// The NGPU TypeScript SDK: a typed, promise-based client of the control plane's
// public services (apps, tasks, nodes), plus the generated types it speaks.
//
//   const ngpu = createNgpuClient({ baseUrl: "http://127.0.0.1:7700", apiKey });
//   const { task } = await ngpu.tasks.submit({ app: "echo", input: { prompt: "hi" } });
//   const done = await ngpu.tasks.wait(task.id);
//   await ngpu.close();
//
// Failed calls reject with `ConnectError` (re-exported here): `err.code` is a gRPC
// `Code`, `err.rawMessage` the server's message.

export {
  createNgpuClient,
  DEFAULT_RUN_WAIT_MS,
  DEFAULT_TIMEOUT_MS,
  WAIT_UNAVAILABLE_LIMIT_MS,
  type AppsApi,
  type CreateKeyInit,
  type CreatedKey,
  type KeysApi,
  type LimitsApi,
  type CallOptions,
  type DeployResult,
  type NgpuClient,
  type NgpuClientOptions,
  type NodesApi,
  type PoolsApi,
  type RunOptions,
  type SubmitResult,
  type TaskEvent,
  type TasksApi,
  type WaitOptions,
  type WebhooksApi,
  type TelemetryApi,
} from "./client.js";
export { DEFAULT_WEBHOOK_TOLERANCE_SECONDS, verifyWebhook, WebhookSignatureError, type VerifyWebhookInit } from "./webhook-signature.js";
export type { NgpuHttpVersion, NgpuProtocol } from "./transport.js";
export type {
  BuiltinRuntimeInit,
  DeployAppInit,
  DockerRuntimeInit,
  GpuRequirementsInit,
  Int64Like,
  ListNodesInit,
  ListTasksInit,
  PageInit,
  PoolPolicyInit,
  ProcessRuntimeInit,
  RuntimeInit,
  SubmitTaskInit,
  UpdateAppInit,
} from "./requests.js";
export { isTerminal, taskStateName, TERMINAL_TASK_STATES } from "./task-state.js";
export { taskOutput, valueToJson } from "./json.js";
export { paginate, type Page } from "./paging.js";
export type { EstimateInit, GranularityName, GroupByName, UsageApi, UsageRecordsInit, UsageSummaryInit, ViewName } from "./usage.js";
export { formatUsd, NANO_USD_PER_USD, parseUsd } from "./money.js";
export { parseReceiptBundle, verifyReceiptBundle, type ReceiptBundle, type ReceiptsApi } from "./receipts.js";
export { verifyReceipts, type ReceiptLike, type VerifyResult } from "../receipts/verify-receipts.js";

export { Code, ConnectError } from "@connectrpc/connect";
export type { JsonObject, JsonValue } from "@bufbuild/protobuf";

export {
  TaskService,
  TaskState,
  TaskStateSchema,
  TaskSchema,
  ProgressSchema,
  WatchTaskResponseSchema,
  SubmitTaskResponseSchema,
  ListTasksResponseSchema,
  type Task,
  type Progress,
  type WatchTaskResponse,
  type SubmitTaskResponse,
  type RunTaskResponse,
  type ListTasksResponse,
} from "../gen/ngpu/v1/task_pb.js";
export {
  AppService,
  AppSchema,
  RuntimeSchema,
  DeployAppResponseSchema,
  ListAppsResponseSchema,
  type App,
  type Runtime,
  type ProcessRuntime,
  type DockerRuntime,
  type BuiltinRuntime,
  type DeployAppResponse,
  type ListAppsResponse,
} from "../gen/ngpu/v1/app_pb.js";
export {
  UsageService,
  UsageGranularity,
  UsageGroupBy,
  UsageView,
  TaskCostSchema,
  PriceSchema,
  EstimateCostResponseSchema,
  GetUsageSummaryResponseSchema,
  ListUsageRecordsResponseSchema,
  UsageRecordSchema,
  type UsageTotals,
  type UsageBucket,
  type UsageGroup,
  type UsageRecord,
  type TaskCost,
  type Price,
  type BillingSettings,
  type GetUsageSummaryResponse,
  type ListUsageRecordsResponse,
  type EstimateCostResponse,
} from "../gen/ngpu/v1/usage_pb.js";
export {
  NodeService,
  NodeState,
  NodeStateSchema,
  NodeSchema,
  ListNodesResponseSchema,
  type Node,
  type ListNodesResponse,
} from "../gen/ngpu/v1/node_pb.js";
export {
  KeyService,
  KeyScope,
  ApiKeySchema,
  type ApiKey,
} from "../gen/ngpu/v1/key_pb.js";
export {
  PoolService,
  PoolMemberState,
  PoolStatusSchema,
  ScalingEventSchema,
  type PoolStatus,
  type PoolMember,
  type ScalingEvent,
} from "../gen/ngpu/v1/pool_pb.js";
export { PoolPolicySchema, type PoolPolicy } from "../gen/ngpu/v1/app_pb.js";
export {
  GpuSchema,
  GpuTelemetrySchema,
  GpuRequirementsSchema,
  type Gpu,
  type GpuTelemetry,
  type GpuRequirements,
} from "../gen/ngpu/v1/gpu_pb.js";

export {
  WebhookService,
  WebhookEventType,
  WebhookDeliveryState,
  WebhookSchema,
  WebhookDeliverySchema,
  type Webhook,
  type WebhookDelivery,
  type WebhookAttempt,
} from "../gen/ngpu/v1/webhook_pb.js";
export { WebhookEventSchema, type WebhookEvent } from "../gen/ngpu/v1/webhook_event_pb.js";
export { TelemetryService, type GpuTelemetrySeries, type TelemetryPoint, type GetNodeTelemetryResponse } from "../gen/ngpu/v1/telemetry_pb.js";
