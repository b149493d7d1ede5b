import { file_ngpu_v1_app, AppService } from "../gen/ngpu/v1/app_pb.js";
import { file_ngpu_v1_key, KeyService } from "../gen/ngpu/v1/key_pb.js";
import { file_ngpu_v1_limits, LimitService } from "../gen/ngpu/v1/limits_pb.js";
import { file_ngpu_v1_receipt, ReceiptService } from "../gen/ngpu/v1/receipt_pb.js";
import { file_ngpu_v1_node, NodeService } from "../gen/ngpu/v1/node_pb.js";
import { file_ngpu_v1_task, TaskService } from "../gen/ngpu/v1/task_pb.js";
import { file_ngpu_v1_telemetry, TelemetryService } from "../gen/ngpu/v1/telemetry_pb.js";
import { file_ngpu_v1_webhook, WebhookService } from "../gen/ngpu/v1/webhook_pb.js";
import { file_ngpu_v1_webhook_event } from "../gen/ngpu/v1/webhook_event_pb.js";
import { file_ngpu_v1_usage, UsageService } from "../gen/ngpu/v1/usage_pb.js";
import { file_ngpu_v1_worker, WorkerService } from "../gen/ngpu/v1/worker_pb.js";
import { file_ngpu_v1_pool, PoolService } from "../gen/ngpu/v1/pool_pb.js";
import { createAppService } from "./api/app-service.js";
import { createPoolService } from "./api/pool-service.js";
import { type Autoscaler, startAutoscaler } from "./autoscaler/autoscaler.js";
import { createAuthenticator } from "./api/auth.js";
import { guarded } from "./api/errors.js";
import { createHealth } from "./api/health.js";
import { createInputSchemaValidator } from "./api/input-schema.js";
import { createKeyService } from "./api/key-service.js";
import { createLimitService } from "./api/limit-service.js";
import { createReceiptService } from "./api/receipt-service.js";
import { loadReceiptSigner, startReceiptWriter } from "./receipts/receipt-writer.js";
import { onUnpricedGpuModel } from "./db/usage.js";
import { createNodeService } from "./api/node-service.js";
import { registerReflection } from "./api/reflection.js";
import { type RpcFallbackHandler, type RpcServer, startRpcServer } from "./api/rpc-server.js";
import { createTaskService } from "./api/task-service.js";
import { createTelemetryService } from "./api/telemetry-service.js";
import { createWebhookService } from "./api/webhook-service.js";
import { createUsageService } from "./api/usage-service.js";
import { type Bus, connectBus } from "./bus/bus.js";
import type { ControlPlaneConfig } from "./config.js";
import { type Db, openDatabase } from "./db/database.js";
import { createGateway, type Gateway } from "./gateway/worker-gateway.js";
import { newId } from "./ids.js";
import type { Logger } from "./log.js";
import { type NodeMonitor, startNodeMonitor } from "./monitor/node-monitor.js";
import { startTelemetryHistory, type TelemetryHistory } from "./monitor/telemetry-history.js";
import { createTelemetryStore, type TelemetryStore } from "./monitor/telemetry-store.js";
import { type Scheduler, startScheduler } from "./scheduler/scheduler.js";
import { startWebhookDeliverer, type WebhookDeliverer, type WebhookDeliveryOptions } from "./webhooks/deliverer.js";

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || host.startsWith("127.");
}

function isPeerGone(err: Error): boolean {
  const code = (err as { code?: unknown }).code;
  return code === "ERR_HTTP2_SESSION_ERROR" || code === "ECONNRESET" || code === "ERR_HTTP2_STREAM_CANCEL" || code === "EPIPE";
}

export interface ControlPlane {
  /** Base URL of the API (gRPC, gRPC-Web and Connect on one port). */
  readonly url: string;
  readonly port: number;
  readonly replicaId: string;
  readonly db: Db;
  readonly bus: Bus;
  readonly scheduler: Scheduler;
  readonly autoscaler: Autoscaler;
  readonly monitor: NodeMonitor;
  readonly gateway: Gateway;
  readonly telemetry: TelemetryStore;
  readonly history: TelemetryHistory;
  readonly webhooks: WebhookDeliverer;
  /** Stops taking calls, ends worker streams, finishes pending writes, closes connections. */
  shutdown(): Promise<void>;
}

export interface ControlPlaneDeps {
  readonly logger: Logger;
  /** Serves non-RPC paths (the dashboard); default 404. */
  readonly fallback?: RpcFallbackHandler;
  /** Webhook delivery settings (tests shorten the retries); defaults otherwise. */
  readonly webhooks?: WebhookDeliveryOptions;
}

/**
 * One control-plane replica: api, scheduler, gateway and monitor roles in one
 * process. Run several against the same Postgres and NATS to scale or survive
 * the loss of one.
 */
export async function startControlPlane(config: ControlPlaneConfig, deps: ControlPlaneDeps): Promise<ControlPlane> {
  const replicaId = config.replicaId || newId("cp");
  const logger = deps.logger.child({ replica: replicaId });
  // NATS first: a bad NATS_URL should fail before anything is written to the database.
  const bus = await connectBus({ url: config.natsUrl, prefix: config.natsPrefix, name: replicaId, logger });
  let db: Db;
  try {
    db = await openDatabase(config.database);
  } catch (err) {
    await bus.close();
    throw err;
  }

  const telemetry = createTelemetryStore();
  const stopTelemetry = bus.onTelemetry((nodeId, report) => telemetry.ingest(nodeId, report.gpus));
  // Usage of a GPU model the price book lacks is billed 0: say so, once per model, so it is noticed.
  const stopUnpricedWarnings = onUnpricedGpuModel((gpuModel) =>
    logger.warn({ gpuModel }, "usage recorded at price 0: the price book has no price for this GPU model (set one: ngpu prices set)"),
  );
  const history = startTelemetryHistory({ db, logger });
  const compactTimer = setInterval(() => history.compact().catch((err) => logger.warn({ err }, "telemetry compaction failed")), 60_000);
  compactTimer.unref();
  const authenticate = createAuthenticator(db);
  const inputSchemas = createInputSchemaValidator();
  const gateway = createGateway({ db, bus, logger, history, gatewayId: replicaId, heartbeatIntervalMs: config.heartbeatIntervalMs, ...(config.workerFloodLimit ? { floodLimit: config.workerFloodLimit } : {}) });
  const health = createHealth();
  const allowPrivateWebhookTargets = deps.webhooks?.allowPrivateTargets ?? config.webhookAllowPrivateTargets ?? false;
  const webhooks = startWebhookDeliverer({
    db,
    logger,
    options: { ...deps.webhooks, allowPrivateTargets: allowPrivateWebhookTargets },
  });

  let server: RpcServer;
  try {
    server = await startRpcServer({
      host: config.host,
      port: config.port,
      ...(config.tls ? { tls: config.tls } : {}),
      ...(deps.fallback ? { fallback: deps.fallback } : {}),
      cors: true,
      // A peer going away (a worker stopping, a client aborting) is routine, not a warning.
      onError: (err) => logger[isPeerGone(err) ? "debug" : "warn"]({ err }, "rpc server error"),
      routes: (router) => {
        router.service(TaskService, guarded(TaskService, createTaskService({ db, bus, authenticate, inputSchemas, allowPrivateWebhookTargets }), logger));
        router.service(AppService, guarded(AppService, createAppService({ db, authenticate, inputSchemas }), logger));
        router.service(NodeService, guarded(NodeService, createNodeService({ db, bus, authenticate, telemetry }), logger));
        router.service(KeyService, guarded(KeyService, createKeyService({ db, authenticate }), logger));
        router.service(LimitService, guarded(LimitService, createLimitService({ db, authenticate }), logger));
        router.service(ReceiptService, guarded(ReceiptService, createReceiptService({ db, authenticate }), logger));
        router.service(UsageService, guarded(UsageService, createUsageService({ db, authenticate }), logger));
        router.service(WorkerService, guarded(WorkerService, gateway.service, logger));
        router.service(TelemetryService, guarded(TelemetryService, createTelemetryService({ db, authenticate, history }), logger));
        router.service(WebhookService, guarded(WebhookService, createWebhookService({ db, authenticate, wakeDeliverer: () => webhooks.wake(), allowPrivateTargets: allowPrivateWebhookTargets }), logger));
        health.register(router);
        router.service(PoolService, guarded(PoolService, createPoolService({ db, authenticate }), logger));
        registerReflection(router, {
          files: [file_ngpu_v1_task, file_ngpu_v1_app, file_ngpu_v1_node, file_ngpu_v1_usage, file_ngpu_v1_worker, file_ngpu_v1_webhook, file_ngpu_v1_webhook_event, file_ngpu_v1_key, file_ngpu_v1_limits, file_ngpu_v1_receipt, file_ngpu_v1_pool, file_ngpu_v1_telemetry],
        });
      },
    });
  } catch (err) {
    await webhooks.shutdown();
    await gateway.shutdown();
    await history.shutdown();
    await bus.close();
    await db.destroy();
    throw err;
  }

  const scheduler = startScheduler({ db, bus, logger });
  const receipts = startReceiptWriter({ db, logger, signer: await loadReceiptSigner(db) });
  const autoscaler = startAutoscaler({ db, bus, logger, ...(config.autoscalerIntervalMs ? { intervalMs: config.autoscalerIntervalMs } : {}) });
  const monitor = startNodeMonitor({ db, bus, logger, replicaId, lostAfterMs: config.lostAfterMs, reconnectGraceMs: config.reconnectGraceMs });
  logger.info({ url: server.url }, "control plane listening");
  if (!config.tls && !isLoopback(config.host)) {
    logger.warn({ host: config.host }, "serving plaintext on a non-loopback address: set NGPU_TLS_CERT and NGPU_TLS_KEY, or terminate TLS in front of it");
  }

  let stopping: Promise<void> | undefined;
  return {
    url: server.url,
    port: server.port,
    replicaId,
    db,
    bus,
    scheduler,
    autoscaler,
    monitor,
    gateway,
    telemetry,
    history,
    webhooks,
    shutdown() {
      stopping ??= (async () => {
        health.shutdown();
        gateway.beginShutdown();
        clearInterval(compactTimer);
        await scheduler.shutdown();
        await receipts.shutdown();
        await autoscaler.shutdown();
        await monitor.shutdown();
        await server.close();
        await gateway.shutdown();
        await webhooks.shutdown();
        await history.shutdown();
        stopTelemetry();
        stopUnpricedWarnings();
        await bus.close();
        await db.destroy();
      })();
      return stopping;
    },
  };
}
