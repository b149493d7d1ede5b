import type { ColumnType, Generated, Insertable, Selectable } from "kysely";

/** Timestamps come back as Date; we write Date or SQL now(). */
type Timestamp = ColumnType<Date, Date | string, Date | string>;
/** A timestamp column with a database default (now()). */
type DefaultedTimestamp = ColumnType<Date, Date | string | undefined, Date | string>;
/** jsonb columns: read as parsed JSON, written as a JSON string (pg would turn JS arrays into SQL arrays). */
type Json<T> = ColumnType<T, string, string>;

export interface WorkspaceTable {
  id: string;
  name: string;
  /** Runs the network: may drain nodes. */
  operator: Generated<boolean>;
  /** 0: no limit. */
  max_concurrent_tasks: Generated<number>;
  max_submits_per_minute: Generated<number>;
  /** Calendar-month (UTC) spend cap in nano-USD; 0: none. */
  monthly_spend_cap_nano_usd: ColumnType<number, number | undefined, number>;
  created_at: DefaultedTimestamp;
}

export interface ApiKeyTable {
  id: string;
  workspace_id: string;
  name: string;
  /** sha256 of the secret part, hex. */
  secret_hash: string;
  created_at: DefaultedTimestamp;
  last_used_at: Timestamp | null;
  revoked_at: Timestamp | null;
  /** FULL | INVOKE | READ_ONLY | WIDGET */
  scope: Generated<string>;
  /** For INVOKE: the app names it may invoke. */
  app_names: ColumnType<string[], string | undefined, string>;
  expires_at: Timestamp | null;
  /** For INVOKE and WIDGET: the ids of the apps named (what calls are checked against). */
  app_ids: ColumnType<string[], string | undefined, string>;
}

export interface EnrollmentTokenTable {
  id: string;
  name: string;
  secret_hash: string;
  created_at: DefaultedTimestamp;
  revoked_at: Timestamp | null;
  /** Paid for the GPU time of nodes enrolled with this token; null: the operator. */
  provider_workspace_id: ColumnType<string | null, string | null | undefined, string | null>;
  expires_at: Timestamp | null;
  /** Joins allowed; each first join of a new node uses one. */
  max_uses: Generated<number>;
  uses: Generated<number>;
}

/** Stored form of the Runtime oneof. */
export type RuntimeRow =
  | { kind: "process"; command: string[]; workingDir: string }
  | { kind: "docker"; image: string; port: number }
  | { kind: "builtin"; name: string };

export interface AppTable {
  id: string;
  workspace_id: string;
  name: string;
  version: number;
  description: string;
  runtime: Json<RuntimeRow>;
  gpu_count: number;
  gpu_min_memory_bytes: number;
  gpu_models: Json<string[]>;
  env: Json<Record<string, string>>;
  input_schema: Json<Record<string, unknown> | null>;
  /** "user" when given at deploy (never overwritten by the app's own), "app" when learnt. */
  input_schema_source: string | null;
  timeout_ms: number;
  created_at: DefaultedTimestamp;
  updated_at: DefaultedTimestamp;
  max_attempts: Generated<number>;
  queue_ttl_ms: Generated<number>;
  /** Any workspace may call it (paying for its own calls). */
  public: Generated<boolean>;
  /** Charged to another workspace per successful call, credited to the author. */
  call_fee_nano_usd: Generated<number>;
  /** Null: no pool (tasks run on any free node). */
  pool_policy: ColumnType<PoolPolicyRow | null, string | null | undefined, string | null>;
}

/** Stored pool policy, defaults resolved (see PoolPolicy in app.proto). */
export interface PoolPolicyRow {
  minNodes: number;
  maxNodes: number;
  idleTimeoutMs: number;
  targetQueueDelayMs: number;
  targetTasksPerNode: number;
  scaleUpStep: number;
  scaleDownStep: number;
}

export interface PoolMemberTable {
  node_id: string;
  app_id: string;
  /** cold_starting | warm | releasing */
  state: string;
  since: DefaultedTimestamp;
  last_busy_at: DefaultedTimestamp;
  /** When WarmApp was last sent (it is sent again while no AppReady comes). */
  warm_sent_at: DefaultedTimestamp;
  gpu_indices: Json<number[]>;
  cold_start_ms: Generated<number>;
}

export interface PoolTargetTable {
  app_id: string;
  desired_nodes: number;
  updated_at: DefaultedTimestamp;
}

export interface ScalingEventTable {
  seq: Generated<number>;
  id: string;
  app_id: string;
  workspace_id: string;
  /** scale_up | scale_down | warm | replace */
  kind: string;
  from_nodes: number;
  to_nodes: number;
  node_ids: Json<string[]>;
  reason: string;
  cold_start_ms: Generated<number>;
  created_at: DefaultedTimestamp;
}

/** Stored form of a declared GPU. */
export interface GpuRow {
  index: number;
  uuid: string;
  model: string;
  memoryTotalBytes: number;
  driverVersion: string;
  pciBusId: string;
  migEnabled: boolean;
  simulated: boolean;
}

export interface NodeTable {
  id: string;
  name: string;
  /** ONLINE | DRAINING | OFFLINE | LOST */
  state: string;
  gpus: Json<GpuRow[]>;
  gpu_error: string;
  runtimes: Json<string[]>;
  max_concurrent_tasks: number;
  worker_version: string;
  warm_app_ids: Json<string[]>;
  /** The control-plane replica holding the node's stream. */
  gateway_id: string | null;
  connected_at: Timestamp | null;
  last_heartbeat_at: Timestamp | null;
  created_at: DefaultedTimestamp;
  completed_attempts: Generated<number>;
  lost_attempts: Generated<number>;
  disconnected_at: Timestamp | null;
  /** Paid for this node's GPU time; null: the operator. */
  provider_workspace_id: ColumnType<string | null, string | null | undefined, string | null>;
  /** Ed25519 public key, raw 32 bytes as base64url. */
  public_key: string | null;
  revoked_at: Timestamp | null;
  revoke_reason: Generated<string>;
}

export interface ProgressRow {
  percent: number;
  step: number;
  totalSteps: number;
  message: string;
}

export interface TaskTable {
  seq: Generated<number>;
  id: string;
  workspace_id: string;
  app_id: string;
  app_version: number;
  /** QUEUED | ASSIGNED | STARTING | RUNNING | SUCCEEDED | FAILED | CANCELLED | TIMED_OUT | EXPIRED */
  state: string;
  priority: number;
  input: Json<Record<string, unknown>>;
  output: Json<unknown> | null;
  error: string;
  progress: Json<ProgressRow | null>;
  labels: Json<Record<string, string>>;
  idempotency_key: string | null;
  timeout_ms: number;
  created_at: DefaultedTimestamp;
  assigned_at: Timestamp | null;
  started_at: Timestamp | null;
  ended_at: Timestamp | null;
  attempt_count: Generated<number>;
  current_attempt_id: string | null;
  node_id: string | null;
  gpu_indices: Json<number[]>;
  cold_start_ms: Generated<number>;
  execution_ms: Generated<number>;
  gpu_ms: Generated<number>;
  max_attempts: Generated<number>;
  expires_at: Timestamp | null;
  not_before: Timestamp | null;
  /** Spend cap of the task across its attempts, nano-USD; null: none. */
  max_cost_nano_usd: ColumnType<number | null, number | null | undefined, number | null>;
  /** Per-call fee fixed at submit (0 for the app author's own calls), charged if the task succeeds. */
  call_fee_nano_usd: Generated<number>;
}

export interface AttemptTable {
  id: string;
  task_id: string;
  workspace_id: string;
  app_id: string;
  node_id: string;
  fencing_token: number;
  gpu_indices: Json<number[]>;
  /** ASSIGNED | STARTING | RUNNING | SUCCEEDED | FAILED | CANCELLED | TIMED_OUT | LOST | RELEASED */
  state: string;
  created_at: DefaultedTimestamp;
  started_at: Timestamp | null;
  ended_at: Timestamp | null;
  cold_start_ms: Generated<number>;
  worker_started_at_ms: number | null;
  worker_ended_at_ms: number | null;
  gpu_ms: Generated<number>;
  error: Generated<string>;
}

export interface GpuSampleTable {
  node_id: string;
  gpu_index: number;
  time: Timestamp;
  utilization_percent: number | null;
  memory_used_bytes: number | null;
  memory_total_bytes: number | null;
  temperature_celsius: number | null;
  power_draw_watts: number | null;
  power_limit_watts: number | null;
  sm_clock_mhz: number | null;
  ecc_uncorrected_errors: number | null;
}

export interface ControlPlaneTable {
  id: string;
  started_at: DefaultedTimestamp;
  last_seen_at: DefaultedTimestamp;
}

export interface GpuPriceTable {
  gpu_model: string;
  effective_from: Timestamp;
  nano_usd_per_gpu_second: number;
  created_at: DefaultedTimestamp;
}

export interface BillingSettingsTable {
  id: Generated<boolean>;
  provider_share_basis_points: number;
  updated_at: DefaultedTimestamp;
}

/** One ended attempt, as billed. Times are epoch ms; money is nano-USD. */
export interface UsageRecordTable {
  attempt_id: string;
  task_id: string;
  /** Who called, and pays. */
  workspace_id: string;
  app_id: string;
  /** The app's author (credited the fee). */
  app_workspace_id: string;
  node_id: string;
  provider_workspace_id: string | null;
  gpu_model: string;
  gpu_count: number;
  /** SUCCEEDED | FAILED | CANCELLED | TIMED_OUT | LOST | RELEASED */
  outcome: string;
  started_at_ms: number | null;
  ended_at_ms: number;
  worker_execution_ms: number | null;
  control_plane_execution_ms: number | null;
  /** Worker's measure minus the control plane's, when both exist. */
  disagreement_ms: number | null;
  /** Billed execution time (per GPU). */
  execution_ms: number;
  gpu_ms: number;
  price_nano_usd_per_gpu_second: number;
  cost_nano_usd: number;
  fee_nano_usd: number;
  provider_share_basis_points: number;
  provider_nano_usd: number;
  recorded_at: DefaultedTimestamp;
}

export interface UsageRollupTable {
  workspace_id: string;
  bucket: Timestamp;
  app_id: string;
  gpu_model: string;
  node_id: string;
  outcome: string;
  app_workspace_id: string;
  provider_workspace_id: string | null;
  attempts: number;
  gpu_ms: number;
  cost_nano_usd: number;
  fee_nano_usd: number;
  provider_nano_usd: number;
}

export interface UsageRollupByAppTable {
  workspace_id: string;
  bucket: Timestamp;
  app_id: string;
  attempts: number;
  succeeded: number;
  failed: number;
  cancelled: number;
  timed_out: number;
  lost: number;
  released: number;
  gpu_ms: number;
  cost_nano_usd: number;
  fee_nano_usd: number;
  provider_nano_usd: number;
}

export interface TaskSubmissionTable {
  workspace_id: string;
  bucket: Timestamp;
  app_id: string;
  shard: number;
  submitted: number;
}

export interface WebhookTable {
  seq: Generated<string>;
  id: string;
  workspace_id: string;
  app_id: string | null;
  task_id: string | null;
  url: string;
  /** Event type names, e.g. "task.progress". */
  events: Json<string[]>;
  /** Signing secret, "whsec_…": kept in clear, because signing needs it. */
  secret: string;
  created_at: DefaultedTimestamp;
  deleted_at: Timestamp | null;
}

export interface WebhookDeliveryTable {
  seq: Generated<string>;
  id: Generated<string>;
  webhook_id: string;
  workspace_id: string;
  task_id: string;
  /** task.state_changed | task.progress | task.completed */
  type: string;
  /** The task row when the event happened (to_jsonb, without input). */
  snapshot: Json<Record<string, unknown>>;
  /** PENDING | DELIVERED | FAILED */
  state: Generated<string>;
  attempt_count: Generated<number>;
  next_attempt_at: DefaultedTimestamp;
  created_at: DefaultedTimestamp;
  delivered_at: Timestamp | null;
  last_status_code: Generated<number>;
  last_error: Generated<string>;
}

export interface WebhookAttemptTable {
  delivery_id: string;
  number: number;
  at: DefaultedTimestamp;
  /** 0 when no HTTP response came. */
  status_code: number;
  error: string;
  duration_ms: number;
}

export interface AttemptClaimTable {
  attempt_id: string;
  claim: Json<Record<string, unknown>>;
  /** base64url Ed25519 signature by the node key. */
  signature: string;
  node_public_key: string;
}

export interface ReceiptKeyTable {
  id: string;
  /** Raw Ed25519 public key, base64url. */
  public_key: string;
  private_key_pem: string;
  created_at: DefaultedTimestamp;
}

export interface UsageReceiptTable {
  workspace_id: string;
  seq: number;
  attempt_id: string;
  body: string;
  hash: string;
  /** base64url. */
  signature: string;
  key_id: string;
  created_at: DefaultedTimestamp;
}

export interface Database {
  attempt_claims: AttemptClaimTable;
  receipt_keys: ReceiptKeyTable;
  usage_receipts: UsageReceiptTable;
  receipt_queue: { attempt_id: string; queued_at: DefaultedTimestamp };
  /** Control-plane replicas and when each was last alive. */
  control_planes: ControlPlaneTable;
  workspaces: WorkspaceTable;
  api_keys: ApiKeyTable;
  enrollment_tokens: EnrollmentTokenTable;
  apps: AppTable;
  nodes: NodeTable;
  tasks: TaskTable;
  attempts: AttemptTable;
  /** Full-resolution GPU readings for recent hours. */
  gpu_samples: GpuSampleTable;
  /** Per-minute averages of older readings. */
  gpu_samples_minute: GpuSampleTable;
  /** Price per GPU model, in force from effective_from. */
  gpu_prices: GpuPriceTable;
  billing_settings: BillingSettingsTable;
  usage_records: UsageRecordTable;
  /** Usage sums per 15-minute bucket, kept as records are written. */
  usage_rollups: UsageRollupTable;
  /** The same sums per app only, outcomes as counts: totals and per-app summaries read these. */
  usage_rollups_by_app: UsageRollupByAppTable;
  task_submissions: TaskSubmissionTable;
  /** Webhook subscriptions, per app or per task. */
  webhooks: WebhookTable;
  /** The webhook outbox and delivery log. */
  webhook_deliveries: WebhookDeliveryTable;
  webhook_attempts: WebhookAttemptTable;
  /** Nodes held in an app's pool. */
  pool_members: PoolMemberTable;
  /** Every pool scaling decision, with its reason. */
  scaling_events: ScalingEventTable;
  /** Nodes the autoscaler last wanted per pool. */
  pool_targets: PoolTargetTable;
}

export type TaskRow = Selectable<TaskTable>;
export type AppRow = Selectable<AppTable>;
export type NodeRow = Selectable<NodeTable>;
export type AttemptRow = Selectable<AttemptTable>;
export type NewTask = Insertable<TaskTable>;
export type UsageRecordRow = Selectable<UsageRecordTable>;
