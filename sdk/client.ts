import { setTimeout as sleep } from "node:timers/promises";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { AppService, type App, type ListAppsResponse } from "../gen/ngpu/v1/app_pb.js";
import { NodeService, type ListNodesResponse, type Node } from "../gen/ngpu/v1/node_pb.js";
import { type ApiKey, KeyScope, KeyService } from "../gen/ngpu/v1/key_pb.js";
import { type GetLimitsResponse, LimitService, type WorkspaceLimits } from "../gen/ngpu/v1/limits_pb.js";
import { ReceiptService } from "../gen/ngpu/v1/receipt_pb.js";
import { createReceiptsApi, type ReceiptsApi } from "./receipts.js";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { PoolService, type ListScalingEventsResponse, type PoolStatus, type ScalingEvent } from "../gen/ngpu/v1/pool_pb.js";
import { TaskService, type ListTasksResponse, type Task, type WatchTaskResponse } from "../gen/ngpu/v1/task_pb.js";
import {
  WebhookService,
  type ListWebhookDeliveriesResponse,
  type ListWebhooksResponse,
  type Webhook,
  type WebhookDelivery,
  type WebhookDeliveryState,
  type WebhookEventType,
} from "../gen/ngpu/v1/webhook_pb.js";
import { UsageService } from "../gen/ngpu/v1/usage_pb.js";
import { TelemetryService, type GetNodeTelemetryResponse, type GpuTelemetrySeries } from "../gen/ngpu/v1/telemetry_pb.js";
import { paginate } from "./paging.js";
import {
  deployAppRequest,
  listNodesRequest,
  listTasksRequest,
  submitTaskRequest,
  updateAppRequest,
  type DeployAppInit,
  type ListNodesInit,
  type ListTasksInit,
  type PageInit,
  type SubmitTaskInit,
  type UpdateAppInit,
} from "./requests.js";
import { isTerminal } from "./task-state.js";
import { createUsageApi, type UsageApi } from "./usage.js";
import { createOwnedTransport, type NgpuHttpVersion, type NgpuProtocol } from "./transport.js";
import { setMaxListeners } from "node:events";

/** Default deadline of a unary call, in ms. Streams (watch) have none unless asked. */
export const DEFAULT_TIMEOUT_MS = 30_000;
/** How long `tasks.run` waits for the task to end when `waitMs` is not given, in ms (the server's default). */
export const DEFAULT_RUN_WAIT_MS = 60_000;
/** Extra time a `tasks.run` call gets beyond its `waitMs`, so the server answers before our deadline. */
const RUN_DEADLINE_MARGIN_MS = 10_000;
/** Backoff bounds of `tasks.wait` when its watch stream drops, in ms. */
const WAIT_RETRY_MIN_MS = 100;
const WAIT_RETRY_MAX_MS = 5_000;
/** `tasks.wait` gives up when the server has been unreachable for this long, in ms. */
export const WAIT_UNAVAILABLE_LIMIT_MS = 60_000;

/** How to reach a control plane. */
export interface NgpuClientOptions {
  /** Control-plane URL, e.g. "http://127.0.0.1:7700" (http:// speaks HTTP/2 without TLS). */
  readonly baseUrl: string;
  /** API key, sent on every call as `authorization: Bearer <apiKey>`. */
  readonly apiKey: string;
  /**
   * Wire protocol. Default "connect": it works over HTTP/2 and HTTP/1.1, streams on
   * both, and its errors survive proxies that drop trailers. "grpc" needs HTTP/2.
   */
  readonly protocol?: NgpuProtocol | undefined;
  /** HTTP version. Default "2": one multiplexed connection for every call and stream. */
  readonly httpVersion?: NgpuHttpVersion | undefined;
  /** Deadline of each unary call in ms; default 30000; 0 means none. Not applied to streams. */
  readonly timeoutMs?: number | undefined;
}

/** Per-call options. */
export interface CallOptions {
  /** Aborting it cancels the call; the call then fails with `Code.Canceled`. */
  readonly signal?: AbortSignal | undefined;
  /** Deadline in ms (fails with `Code.DeadlineExceeded`); default: the client's `timeoutMs` for unary calls, none for streams. */
  readonly timeoutMs?: number | undefined;
}

/** Options of `tasks.run`. */
export interface RunOptions extends CallOptions {
  /** How long the server waits for the task to end, in ms (1..600000); default 60000. */
  readonly waitMs?: number | undefined;
}

/** Options of `tasks.wait`. */
export interface WaitOptions {
  /** Aborting it stops waiting (the task keeps running); `wait` then fails with `Code.Canceled`. */
  readonly signal?: AbortSignal | undefined;
  /** Give up after this many ms with `Code.DeadlineExceeded` (the task keeps running); default: no limit. */
  readonly timeoutMs?: number | undefined;
  /** Called with every event while waiting (after a rewatch, the task is sent again first). */
  readonly onEvent?: ((event: TaskEvent) => void) | undefined;
}

/** One event of `tasks.watch`: the whole task (first, and on every state change), progress, a partial output, or a log line. */
export type TaskEvent = Exclude<WatchTaskResponse["event"], { case: undefined }>;

export interface SubmitResult {
  readonly task: Task;
  /** False when the idempotency key matched an earlier task (which is returned). */
  readonly created: boolean;
  /** The task's webhook with its signing secret, when one was asked for. */
  readonly webhook?: Webhook | undefined;
}

export interface TelemetryApi {
  /** The readings of the GPUs a task held, over each attempt (at most `maxPoints` per GPU; default 500). */
  task(taskId: string, init?: { maxPoints?: number }, options?: CallOptions): Promise<GpuTelemetrySeries[]>;
  /** A node's readings over [start, end) (end default now), averaged to at most `maxPoints` per GPU. */
  node(nodeId: string, init: { start: Date; end?: Date; maxPoints?: number }, options?: CallOptions): Promise<GetNodeTelemetryResponse>;
}

export interface WebhooksApi {
  /** Subscribes a URL to the events of every task of an app; the result holds the signing secret (shown once). */
  create(init: { app: string; url: string; events?: readonly WebhookEventType[] }, options?: CallOptions): Promise<Webhook>;
  /** One page of webhooks (without secrets), newest first. */
  list(init?: PageInit & { app?: string; taskId?: string }, options?: CallOptions): Promise<ListWebhooksResponse>;
  /** Stops new deliveries; pending ones end FAILED. */
  delete(webhookId: string, options?: CallOptions): Promise<void>;
  /** One page of the delivery log, newest first. */
  deliveries(init?: PageInit & { webhookId?: string; taskId?: string; states?: readonly WebhookDeliveryState[] }, options?: CallOptions): Promise<ListWebhookDeliveriesResponse>;
  /** A delivery with every attempt and the body sent. */
  getDelivery(deliveryId: string, options?: CallOptions): Promise<WebhookDelivery>;
  /** Sends a delivery again, with a fresh signature. */
  replay(deliveryId: string, options?: CallOptions): Promise<WebhookDelivery>;
}

export interface DeployResult {
  readonly app: App;
  /** False when an identical version already existed. */
  readonly created: boolean;
}

export interface AppsApi {
  /** Creates an app, or a new version of the app with the same name. */
  deploy(init: DeployAppInit, options?: CallOptions): Promise<DeployResult>;
  /** Changes some fields of an app; bumps its version. */
  update(init: UpdateAppInit, options?: CallOptions): Promise<App>;
  /** An app by id or name; fails with `Code.NotFound` when there is none. */
  get(app: string, options?: CallOptions): Promise<App>;
  /** One page of apps. */
  list(init?: PageInit, options?: CallOptions): Promise<ListAppsResponse>;
  /** Every app, fetching pages of `pageSize` lazily as you iterate. */
  listAll(init?: Omit<PageInit, "pageToken">, options?: CallOptions): AsyncIterable<App>;
}

export interface TasksApi {
  /** Queues a task and returns it at once (usually QUEUED). */
  submit(init: SubmitTaskInit, options?: CallOptions): Promise<SubmitResult>;
  /** Submits and lets the server wait up to `waitMs` for the end; the task may come back still running. */
  run(init: SubmitTaskInit, options?: RunOptions): Promise<SubmitResult>;
  get(taskId: string, options?: CallOptions): Promise<Task>;
  /**
   * The task's events: the task now, then every change, ending after the event that
   * carries a terminal task. Breaking out of the loop cancels the stream.
   */
  watch(taskId: string, options?: CallOptions): AsyncIterable<TaskEvent>;
  /** Cancels in any state; a task that already ended comes back unchanged. */
  cancel(taskId: string, options?: CallOptions): Promise<Task>;
  /** One page of tasks, newest first. */
  list(init?: ListTasksInit, options?: CallOptions): Promise<ListTasksResponse>;
  /** Every matching task, newest first, fetching pages lazily as you iterate. */
  listAll(init?: Omit<ListTasksInit, "pageToken">, options?: CallOptions): AsyncIterable<Task>;
  /**
   * Watches until the task ends and returns it in its terminal state. Rewatches when
   * the stream drops (`Code.Unavailable`, a reset stream, or an end without a terminal task), with
   * backoff up to 5 s; fails with the last error after 60 s without reaching the server.
   */
  wait(taskId: string, options?: WaitOptions): Promise<Task>;
}

export interface NodesApi {
  /** One page of nodes with their latest GPU telemetry. */
  list(init?: ListNodesInit, options?: CallOptions): Promise<ListNodesResponse>;
  /** Every node, fetching pages lazily as you iterate. */
  listAll(init?: Omit<ListNodesInit, "pageToken">, options?: CallOptions): AsyncIterable<Node>;
  get(nodeId: string, options?: CallOptions): Promise<Node>;
  /** Stops giving the node work; running tasks may finish within graceMs (default 30000). Operators only. */
  drain(nodeId: string, graceMs?: number, options?: CallOptions): Promise<Node>;
  /** Bans the node for good: its stream ends, its tasks run elsewhere, it cannot rejoin. Operators only. */
  revoke(nodeId: string, reason?: string, options?: CallOptions): Promise<Node>;
}

/** What a new key may do. */
export interface CreateKeyInit {
  readonly name?: string;
  /** "full" (default), "invoke" (needs `apps`), "read-only" or "widget" (needs `apps`; for web pages). */
  readonly scope?: "full" | "invoke" | "read-only" | "widget";
  /** For "invoke" and "widget": your apps (name or id), or published apps of others as "<workspace>/<app>" or id. */
  readonly apps?: readonly string[];
  /** When it stops working (Unix ms or a Date); default never. */
  readonly expiresAt?: number | Date;
}

export interface CreatedKey {
  readonly key: ApiKey;
  /** "<id>.<secret>" to use as an apiKey; shown once. */
  readonly secret: string;
}

export interface LimitsApi {
  /** The workspace's limits, its spend this month (UTC) and its unfinished tasks. */
  get(options?: CallOptions): Promise<GetLimitsResponse>;
  /** Replaces the limits (a 0 or missing field: no limit). Needs a full key. */
  set(limits: { maxConcurrentTasks?: number; maxSubmitsPerMinute?: number; monthlySpendCapNanoUsd?: bigint | number }, options?: CallOptions): Promise<WorkspaceLimits>;
}

export interface KeysApi {
  /** Creates an API key in the caller's workspace (needs a full key). */
  create(init?: CreateKeyInit, options?: CallOptions): Promise<CreatedKey>;
  /** The workspace's keys (without secrets); `includeInactive` adds revoked and expired ones. */
  list(includeInactive?: boolean, options?: CallOptions): Promise<ApiKey[]>;
  /** The key stops working at once, on every control-plane replica. */
  revoke(keyId: string, options?: CallOptions): Promise<ApiKey>;
  /** An enrollment token admitting `maxUses` (default 1) new workers, optionally expiring. Operators only. */
  createEnrollmentToken(init?: { name?: string; maxUses?: number; expiresAt?: number | Date }, options?: CallOptions): Promise<{ tokenId: string; token: string }>;
}

export interface PoolsApi {
  /** What the app's pool holds now: desired, warm, busy and cold-starting nodes, queue depth, oldest wait. */
  status(app: string, options?: CallOptions): Promise<PoolStatus>;
  /** One page of the app's scaling decisions, newest first, each with its reason: `events("style-app", { pageSize: 20 })`. */
  events(app: string, init?: PageInit, options?: CallOptions): Promise<ListScalingEventsResponse>;
  /** @deprecated The earlier form, `events({ app, pageSize })`; kept working. */
  events(init: { app: string } & PageInit, options?: CallOptions): Promise<ListScalingEventsResponse>;
  /** Every scaling decision of the app, newest first, fetching pages lazily. */
  eventsAll(app: string, init?: Omit<PageInit, "pageToken">, options?: CallOptions): AsyncIterable<ScalingEvent>;
  /** @deprecated The earlier form, `eventsAll({ app })`; kept working. */
  eventsAll(init: { app: string } & Omit<PageInit, "pageToken">, options?: CallOptions): AsyncIterable<ScalingEvent>;
}

/**
 * A client of one control plane. Errors are `ConnectError`s from `@connectrpc/connect`
 * (`code`, `rawMessage`), passed through as the server sent them.
 */
export interface NgpuClient {
  readonly apps: AppsApi;
  readonly tasks: TasksApi;
  readonly nodes: NodesApi;
  readonly webhooks: WebhooksApi;
  /** GPU readings over time: a task's GPUs during its attempts, or a node over a range. */
  readonly telemetry: TelemetryApi;
  readonly keys: KeysApi;
  /** Concurrency, submit-rate and monthly spend limits of the workspace. */
  readonly limits: LimitsApi;
  /** Verifiable usage receipts: fetch them, or fetch and check them here. */
  readonly receipts: ReceiptsApi;
  /** Metering: usage summaries, records, CSV export, per-task cost, estimates, prices. */
  readonly usage: UsageApi;
  readonly pools: PoolsApi;
  /** Closes the connections and fails the calls in flight with `Code.Canceled`. Idempotent. */
  close(): Promise<void>;
}

function required<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new ConnectError(`the server sent no ${what}`, Code.Internal);
  return value;
}

/** Creates a client. Nothing connects until the first call. */
export function createNgpuClient(options: NgpuClientOptions): NgpuClient {
  let url: URL;
  try {
    url = new URL(options.baseUrl);
  } catch {
    throw new TypeError(`createNgpuClient: baseUrl is not a URL: ${JSON.stringify(options.baseUrl)}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new TypeError(`createNgpuClient: baseUrl must be http:// or https://, got ${JSON.stringify(options.baseUrl)}`);
  }
  if (options.apiKey.trim() === "") throw new TypeError("createNgpuClient: apiKey is empty");
  const defaultTimeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!Number.isFinite(defaultTimeoutMs) || defaultTimeoutMs < 0) {
    throw new TypeError(`createNgpuClient: timeoutMs must be a number ≥ 0, got ${defaultTimeoutMs}`);
  }

  const closed = new AbortController();
  // Every call links its own signal to this one; many concurrent calls are normal, not a leak.
  setMaxListeners(0, closed.signal);
  const authorization = `Bearer ${options.apiKey}`;
  const auth: Interceptor = (next) => async (req) => {
    if (closed.signal.aborted) throw new ConnectError("the NGPU client is closed", Code.Canceled);
    req.header.set("authorization", authorization);
    return next(req);
  };
  const owned = createOwnedTransport({
    baseUrl: options.baseUrl,
    protocol: options.protocol ?? "connect",
    httpVersion: options.httpVersion ?? "2",
    interceptors: [auth],
  });
  const taskClient = createClient(TaskService, owned.transport);
  const appClient = createClient(AppService, owned.transport);
  const nodeClient = createClient(NodeService, owned.transport);
  const webhookClient = createClient(WebhookService, owned.transport);
  const telemetryClient = createClient(TelemetryService, owned.transport);
  const keyClient = createClient(KeyService, owned.transport);
  const limitClient = createClient(LimitService, owned.transport);
  const receiptClient = createClient(ReceiptService, owned.transport);
  const usageClient = createClient(UsageService, owned.transport);
  const poolClient = createClient(PoolService, owned.transport);

  // Every call also listens to `closed`, so close() ends open streams at once.
  function signalFor(signal: AbortSignal | undefined): AbortSignal {
    return signal === undefined ? closed.signal : AbortSignal.any([closed.signal, signal]);
  }
  function unary(opts: CallOptions | undefined, floorMs = 0): { signal: AbortSignal; timeoutMs: number } {
    const timeoutMs = opts?.timeoutMs ?? (defaultTimeoutMs === 0 ? 0 : Math.max(defaultTimeoutMs, floorMs));
    return { signal: signalFor(opts?.signal), timeoutMs };
  }
  function stream(opts: CallOptions | undefined): { signal: AbortSignal; timeoutMs?: number } {
    const signal = signalFor(opts?.signal);
    return opts?.timeoutMs === undefined ? { signal } : { signal, timeoutMs: opts.timeoutMs };
  }

  const apps: AppsApi = {
    async deploy(init, opts) {
      const res = await appClient.deployApp(deployAppRequest(init), unary(opts));
      return { app: required(res.app, "app"), created: res.created };
    },
    async update(init, opts) {
      const res = await appClient.updateApp(updateAppRequest(init), unary(opts));
      return required(res.app, "app");
    },
    async get(app, opts) {
      return required((await appClient.getApp({ app }, unary(opts))).app, "app");
    },
    list(init, opts) {
      return appClient.listApps({ pageSize: init?.pageSize ?? 0, pageToken: init?.pageToken ?? "" }, unary(opts));
    },
    listAll(init, opts) {
      return paginate(async (pageToken) => {
        const res = await apps.list({ ...init, pageToken }, opts);
        return { items: res.apps, nextPageToken: res.nextPageToken };
      });
    },
  };

  async function* watch(taskId: string, opts?: CallOptions): AsyncGenerator<TaskEvent, void, undefined> {
    for await (const res of taskClient.watchTask({ taskId }, stream(opts))) {
      const event = res.event;
      if (event.case === undefined) continue; // a newer server's event kind we do not know
      yield event;
      // Returning here closes the stream even if the server would keep it open.
      if (event.case === "task" && isTerminal(event.value.state)) return;
    }
  }

  async function wait(taskId: string, opts?: WaitOptions): Promise<Task> {
    const timeoutMs = opts?.timeoutMs;
    const deadline = timeoutMs === undefined ? undefined : Date.now() + timeoutMs;
    const signal = signalFor(opts?.signal);
    const timedOut = () => new ConnectError(`task ${taskId} did not end within ${timeoutMs} ms`, Code.DeadlineExceeded);
    let retryMs = WAIT_RETRY_MIN_MS;
    let unavailableSince: number | undefined;
    for (;;) {
      const remainingMs = deadline === undefined ? undefined : deadline - Date.now();
      if (remainingMs !== undefined && remainingMs <= 0) throw timedOut();
      try {
        for await (const event of watch(taskId, { signal, timeoutMs: remainingMs })) {
          opts?.onEvent?.(event);
          if (event.case !== "task") continue;
          retryMs = WAIT_RETRY_MIN_MS; // the stream works again
          unavailableSince = undefined;
          if (isTerminal(event.value.state)) return event.value;
        }
        // The stream ended before the task did (server restart, proxy): watch again.
      } catch (err) {
        const connectErr = ConnectError.from(err);
        if (connectErr.code === Code.DeadlineExceeded && deadline !== undefined && Date.now() >= deadline) throw timedOut();
        // Unavailable: the connection failed. Canceled while our signal is not aborted:
        // the peer or a proxy reset the stream. Both are worth another watch.
        const transient = connectErr.code === Code.Unavailable || connectErr.code === Code.Canceled;
        if (!transient || signal.aborted) throw err;
        unavailableSince ??= Date.now();
        if (Date.now() - unavailableSince >= WAIT_UNAVAILABLE_LIMIT_MS) throw err;
      }
      try {
        await sleep(retryMs, undefined, { signal });
      } catch (err) {
        throw new ConnectError(`stopped waiting for task ${taskId}`, Code.Canceled, undefined, undefined, err);
      }
      retryMs = Math.min(retryMs * 2, WAIT_RETRY_MAX_MS);
    }
  }

  const tasks: TasksApi = {
    async submit(init, opts) {
      const res = await taskClient.submitTask(submitTaskRequest(init), unary(opts));
      return { task: required(res.task, "task"), created: res.created, webhook: res.webhook };
    },
    async run(init, opts) {
      const waitMs = opts?.waitMs ?? DEFAULT_RUN_WAIT_MS;
      const res = await taskClient.runTask(
        { task: submitTaskRequest(init), waitMs },
        unary(opts, waitMs + RUN_DEADLINE_MARGIN_MS),
      );
      return { task: required(res.task, "task"), created: res.created };
    },
    async get(taskId, opts) {
      return required((await taskClient.getTask({ taskId }, unary(opts))).task, "task");
    },
    watch,
    async cancel(taskId, opts) {
      return required((await taskClient.cancelTask({ taskId }, unary(opts))).task, "task");
    },
    list(init, opts) {
      return taskClient.listTasks(listTasksRequest(init ?? {}), unary(opts));
    },
    listAll(init, opts) {
      return paginate(async (pageToken) => {
        const res = await tasks.list({ ...init, pageToken }, opts);
        return { items: res.tasks, nextPageToken: res.nextPageToken };
      });
    },
    wait,
  };

  const nodes: NodesApi = {
    list(init, opts) {
      return nodeClient.listNodes(listNodesRequest(init ?? {}), unary(opts));
    },
    listAll(init, opts) {
      return paginate(async (pageToken) => {
        const res = await nodes.list({ ...init, pageToken }, opts);
        return { items: res.nodes, nextPageToken: res.nextPageToken };
      });
    },
    async get(nodeId, opts) {
      return required((await nodeClient.getNode({ nodeId }, unary(opts))).node, "node");
    },
    async drain(nodeId, graceMs, opts) {
      return required((await nodeClient.drainNode({ nodeId, graceMs: graceMs ?? 0 }, unary(opts))).node, "node");
    },
    async revoke(nodeId, reason, opts) {
      return required((await nodeClient.revokeNode({ nodeId, reason: reason ?? "" }, unary(opts))).node, "node");
    },
  };

  const expiry = (at: number | Date | undefined) => (at === undefined ? undefined : timestampFromMs(at instanceof Date ? at.getTime() : at));
  const scopes = { full: KeyScope.FULL, invoke: KeyScope.INVOKE, "read-only": KeyScope.READ_ONLY, widget: KeyScope.WIDGET } as const;
  const keys: KeysApi = {
    async create(init, opts) {
      const res = await keyClient.createKey(
        { name: init?.name ?? "", scope: scopes[init?.scope ?? "full"], apps: [...(init?.apps ?? [])], expireTime: expiry(init?.expiresAt) },
        unary(opts),
      );
      return { key: required(res.key, "key"), secret: res.secret };
    },
    async list(includeInactive, opts) {
      return (await keyClient.listKeys({ includeInactive: includeInactive ?? false }, unary(opts))).keys;
    },
    async revoke(keyId, opts) {
      return required((await keyClient.revokeKey({ keyId }, unary(opts))).key, "key");
    },
    async createEnrollmentToken(init, opts) {
      const res = await keyClient.createEnrollmentToken({ name: init?.name ?? "", maxUses: init?.maxUses ?? 0, expireTime: expiry(init?.expiresAt) }, unary(opts));
      return { tokenId: res.tokenId, token: res.token };
    },
  };

  const webhooks: WebhooksApi = {
    async create(init, opts) {
      return required((await webhookClient.createWebhook({ app: init.app, url: init.url, events: [...(init.events ?? [])] }, unary(opts))).webhook, "webhook");
    },
    list(init, opts) {
      return webhookClient.listWebhooks({ pageSize: init?.pageSize ?? 0, pageToken: init?.pageToken ?? "", app: init?.app ?? "", taskId: init?.taskId ?? "" }, unary(opts));
    },
    async delete(webhookId, opts) {
      await webhookClient.deleteWebhook({ webhookId }, unary(opts));
    },
    deliveries(init, opts) {
      return webhookClient.listWebhookDeliveries(
        { pageSize: init?.pageSize ?? 0, pageToken: init?.pageToken ?? "", webhookId: init?.webhookId ?? "", taskId: init?.taskId ?? "", states: [...(init?.states ?? [])] },
        unary(opts),
      );
    },
    async getDelivery(deliveryId, opts) {
      return required((await webhookClient.getWebhookDelivery({ deliveryId }, unary(opts))).delivery, "delivery");
    },
    async replay(deliveryId, opts) {
      return required((await webhookClient.replayWebhookDelivery({ deliveryId }, unary(opts))).delivery, "delivery");
    },
  };

  /** `(app, init, options)` or the earlier `({ app, ...init }, options)` → [app, init, options]. */
  function poolCallArgs(appOrInit: string | ({ app: string } & PageInit), initOrOpts?: PageInit | CallOptions, maybeOpts?: CallOptions): [string, PageInit, CallOptions | undefined] {
    if (typeof appOrInit === "string") return [appOrInit, (initOrOpts as PageInit | undefined) ?? {}, maybeOpts];
    const { app, ...init } = appOrInit;
    return [app, init, initOrOpts as CallOptions | undefined];
  }

  const pools: PoolsApi = {
    async status(app, opts) {
      return required((await poolClient.getPoolStatus({ app }, unary(opts))).status, "status");
    },
    events(appOrInit: string | ({ app: string } & PageInit), initOrOpts?: PageInit | CallOptions, maybeOpts?: CallOptions) {
      const [app, init, opts] = poolCallArgs(appOrInit, initOrOpts, maybeOpts);
      return poolClient.listScalingEvents({ app, pageSize: init.pageSize ?? 0, pageToken: init.pageToken ?? "" }, unary(opts));
    },
    eventsAll(appOrInit: string | ({ app: string } & PageInit), initOrOpts?: PageInit | CallOptions, maybeOpts?: CallOptions) {
      const [app, init, opts] = poolCallArgs(appOrInit, initOrOpts, maybeOpts);
      return paginate(async (pageToken) => {
        const res = await pools.events(app, { ...init, pageToken }, opts);
        return { items: res.events, nextPageToken: res.nextPageToken };
      });
    },
  };

  const telemetry: TelemetryApi = {
    async task(taskId, init, opts) {
      return (await telemetryClient.getTaskTelemetry({ taskId, maxPoints: init?.maxPoints ?? 0 }, unary(opts))).series;
    },
    node(nodeId, init, opts) {
      return telemetryClient.getNodeTelemetry(
        { nodeId, startTime: timestampFromDate(init.start), ...(init.end ? { endTime: timestampFromDate(init.end) } : {}), maxPoints: init.maxPoints ?? 0 },
        unary(opts),
      );
    },
  };

  return {
    apps,
    tasks,
    nodes,
    webhooks,
    telemetry,
    keys,
    receipts: createReceiptsApi(receiptClient, (o) => unary(o)),
    limits: {
      get: (opts) => limitClient.getLimits({}, unary(opts)),
      async set(l, opts) {
        const limits = { maxConcurrentTasks: l.maxConcurrentTasks ?? 0, maxSubmitsPerMinute: l.maxSubmitsPerMinute ?? 0, monthlySpendCapNanoUsd: BigInt(l.monthlySpendCapNanoUsd ?? 0) };
        return required((await limitClient.setLimits({ limits }, unary(opts))).limits, "limits");
      },
    },
    usage: createUsageApi(usageClient, unary, stream),
    pools,
    async close() {
      if (closed.signal.aborted) return;
      closed.abort(new ConnectError("the NGPU client is closed", Code.Canceled));
      owned.close();
    },
  };
}
