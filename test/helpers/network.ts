import { randomBytes } from "node:crypto";
import { type ControlPlane, startControlPlane } from "../../control-plane/control-plane.js";
import { createApiKey, createEnrollmentToken, createWorkspace } from "../../control-plane/db/credentials.js";
import { createLogger } from "../../control-plane/log.js";
import { createStaticSite } from "../../control-plane/web/static-site.js";
import type { WebhookDeliveryOptions } from "../../control-plane/webhooks/deliverer.js";
import { ensureDashboardBuilt } from "../../dashboard/build.js";
import { createTestDatabase, type TestDatabase } from "./postgres.js";

export const TEST_NATS_URL = process.env.NGPU_TEST_NATS_URL ?? "nats://127.0.0.1:4222";

/** A subject prefix no other test uses, so tests can share the NATS server. */
export function testPrefix(): string {
  return `ngpu_test_${randomBytes(6).toString("hex")}`;
}

export interface TestNetwork {
  readonly cp: ControlPlane;
  readonly database: TestDatabase;
  readonly prefix: string;
  readonly url: string;
  /** API key of a workspace made for the test. */
  readonly apiKey: string;
  readonly workspaceId: string;
  readonly enrollmentToken: string;
  /** Another workspace, for isolation checks. */
  newWorkspace(): Promise<{ workspaceId: string; apiKey: string }>;
  /** Starts another replica over the same database and NATS prefix. */
  addReplica(): Promise<ControlPlane>;
  close(): Promise<void>;
}

export interface TestNetworkOptions {
  readonly lostAfterMs?: number;
  readonly heartbeatIntervalMs?: number;
  readonly reconnectGraceMs?: number;
  readonly webhooks?: WebhookDeliveryOptions;
  readonly autoscalerIntervalMs?: number;
  /** Serve the dashboard and widgets (built if missing) from the control plane. */
  readonly dashboard?: boolean;
  readonly workerFloodLimit?: { perSecond: number; burst: number };
  /** Serve TLS with this certificate and key (PEM). */
  readonly tls?: { cert: Buffer; key: Buffer };
}

/** A control plane on its own database and NATS prefix, listening on a free port. */
export async function startTestNetwork(options: TestNetworkOptions = {}): Promise<TestNetwork> {
  const database = await createTestDatabase();
  const prefix = testPrefix();
  const logger = createLogger({ level: process.env.NGPU_TEST_LOG_LEVEL ?? "silent" });
  const config = {
    database: { kind: "postgres" as const, url: database.url, poolSize: 10 },
    natsUrl: TEST_NATS_URL,
    natsPrefix: prefix,
    host: "127.0.0.1",
    port: 0,
    replicaId: "",
    heartbeatIntervalMs: options.heartbeatIntervalMs ?? 1000,
    lostAfterMs: options.lostAfterMs ?? 3000,
    reconnectGraceMs: options.reconnectGraceMs ?? 1000,
    logLevel: "silent",
    autoscalerIntervalMs: options.autoscalerIntervalMs ?? 1000,
    ...(options.workerFloodLimit ? { workerFloodLimit: options.workerFloodLimit } : {}),
    ...(options.tls ? { tls: options.tls } : {}),
  };
  const replicas: ControlPlane[] = [];
  const deps = {
    logger,
    // Test receivers listen on loopback.
    webhooks: { allowPrivateTargets: true, ...options.webhooks },
    ...(options.dashboard ? { fallback: createStaticSite({ dir: await ensureDashboardBuilt() }) } : {}),
  };
  const cp = await startControlPlane(config, deps);
  replicas.push(cp);
  const ws = await createWorkspace(cp.db, "test", { operator: true });
  const key = await createApiKey(cp.db, ws.id, "test");
  // One token for all of a test's workers (real ones admit one node by default).
  const enrollment = await createEnrollmentToken(cp.db, { name: "test workers", maxUses: 10_000 });
  return {
    cp,
    database,
    prefix,
    url: cp.url,
    apiKey: key.key,
    workspaceId: ws.id,
    enrollmentToken: enrollment.token,
    async newWorkspace() {
      const other = await createWorkspace(cp.db, "other");
      const otherKey = await createApiKey(cp.db, other.id, "other");
      return { workspaceId: other.id, apiKey: otherKey.key };
    },
    async addReplica() {
      const replica = await startControlPlane(config, deps);
      replicas.push(replica);
      return replica;
    },
    async close() {
      await Promise.allSettled(replicas.map((r) => r.shutdown()));
      await database.drop();
    },
  };
}
