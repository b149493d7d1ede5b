import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { type ControlPlane, startControlPlane } from "../../control-plane/control-plane.js";
import { dashboardSite } from "../dashboard-site.js";
import { type ControlPlaneConfig, loadControlPlaneConfig } from "../../control-plane/config.js";
import { createApiKey, createEnrollmentToken, createWorkspace, checkEnrollmentToken, verifyApiKey } from "../../control-plane/db/credentials.js";
import type { Db } from "../../control-plane/db/database.js";
import { deployApp } from "../../control-plane/db/apps.js";
import { priceAt, setPrice } from "../../control-plane/db/prices.js";
import type { Logger } from "../../control-plane/log.js";
import { parseSimulatedGpuSpec } from "../../worker/gpu/simulated-gpu.js";
import { startWorker, type Worker } from "../../worker/worker.js";
import { createLogger as createWorkerLogger } from "../../worker/log.js";
import { findNatsServer, type LocalNatsServer, startLocalNatsServer } from "./nats-server.js";

/** What `ngpu dev` writes for the CLI and examples: the local network's address and keys. */
export interface DevCredentials {
  readonly url: string;
  readonly apiKey: string;
  readonly enrollmentToken: string;
  readonly workspaceId: string;
}

export interface DevNetworkOptions {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly logger: Logger;
  /** Default: NGPU_DATA_DIR or ./.ngpu */
  readonly dataDir?: string;
  /** Simulated GPU specs, one worker each. */
  readonly workers?: readonly string[];
  /** Deploy the demo app. Default true. */
  readonly demo?: boolean;
}

export interface DevNetwork {
  readonly url: string;
  readonly credentials: DevCredentials;
  readonly dataDir: string;
  readonly controlPlane: ControlPlane;
  readonly workers: readonly Worker[];
  /** Where the database and NATS came from, for the banner. */
  readonly database: string;
  readonly nats: string;
  shutdown(): Promise<void>;
}

export const DEFAULT_DEV_WORKERS = ["NVIDIA GeForce RTX 3090:24GiB", "NVIDIA GeForce RTX 4090:24GiB"];

/** The price book's seeded figure (the brief's): an RTX 3090 at 0.000366 USD per GPU-second. */
const RTX_3090_NANO_USD_PER_SECOND = 366_000;

/**
 * Prices the dev network gives the GPU models it simulates when the book has none,
 * so its tasks are not billed 0. Derived, not quoted: the RTX 3090's price scaled by
 * the two cards' launch prices (NVIDIA's US MSRPs: RTX 3090 1,499 USD in September 2020,
 * RTX 4090 1,599 USD in October 2022): 366,000 × 1,599 / 1,499 = 390,416 nano-USD.
 * Any other model gets the RTX 3090's price (and a log line saying so).
 */
export const DEV_GPU_PRICES: Readonly<Record<string, number>> = {
  "NVIDIA GeForce RTX 3090": RTX_3090_NANO_USD_PER_SECOND,
  "NVIDIA GeForce RTX 4090": 390_416,
};
export const DEMO_APP = "style-app";

/** The repository root: the demo app runs from source. */
const ROOT = resolve(import.meta.dirname, "../..");

/** New nodes the local network's token admits (dev workers with fresh data folders). */
const DEV_TOKEN_USES = 100;

async function ensureCredentials(db: Db, file: string, url: string): Promise<DevCredentials> {
  if (existsSync(file)) {
    try {
      const saved = JSON.parse(readFileSync(file, "utf8")) as DevCredentials;
      const principal = await verifyApiKey(db, saved.apiKey);
      // Workers that joined before rejoin with their node keys; the token only admits new ones.
      const tokenUsable = (await checkEnrollmentToken(db, saved.enrollmentToken)) === undefined;
      const enrollmentToken = tokenUsable ? saved.enrollmentToken : (await createEnrollmentToken(db, { name: "dev workers", maxUses: DEV_TOKEN_USES })).token;
      const creds = { ...saved, url, enrollmentToken, workspaceId: principal.workspaceId };
      writeFileSync(file, JSON.stringify(creds, null, 2) + "\n", { mode: 0o600 });
      return creds;
    } catch {
      // Unreadable or from another database: make new ones below.
    }
  }
  // You run this network, so your workspace is its operator's.
  const ws = await createWorkspace(db, "dev", { operator: true });
  const key = await createApiKey(db, ws.id, "dev");
  const token = await createEnrollmentToken(db, { name: "dev workers", maxUses: DEV_TOKEN_USES });
  const creds: DevCredentials = { url, apiKey: key.key, enrollmentToken: token.token, workspaceId: ws.id };
  writeFileSync(file, JSON.stringify(creds, null, 2) + "\n", { mode: 0o600 });
  return creds;
}

/**
 * A whole network on one machine: embedded Postgres (PGlite) unless
 * DATABASE_URL is set, a private nats-server unless NATS_URL is set, one
 * control plane, simulated-GPU workers, and the demo app deployed.
 */
export async function startDevNetwork(options: DevNetworkOptions): Promise<DevNetwork> {
  const { env, logger } = options;
  const dataDir = resolve(options.dataDir ?? env.NGPU_DATA_DIR ?? ".ngpu");
  mkdirSync(dataDir, { recursive: true });
  const cleanup: Array<() => Promise<void>> = [];
  const undo = async () => {
    for (const fn of cleanup.reverse()) await fn().catch(() => {});
  };
  try {
    let nats: LocalNatsServer | undefined;
    let natsUrl = env.NATS_URL;
    if (!natsUrl) {
      const binary = findNatsServer(env);
      if (!binary) throw new Error("nats-server not found: install it (Debian: apt-get install nats-server), set NGPU_NATS_SERVER to its path, or set NATS_URL");
      nats = await startLocalNatsServer(binary, join(dataDir, "nats"));
      cleanup.push(() => nats!.stop());
      natsUrl = nats.url;
    }
    const config: ControlPlaneConfig = loadControlPlaneConfig(env, {
      database: { kind: "pglite", dataDir: join(dataDir, "pglite") },
      natsUrl,
    });
    const site = await dashboardSite(logger);
    // A local network's webhooks go to local receivers.
    const cp = await startControlPlane(config, { logger, webhooks: { allowPrivateTargets: true }, ...(site ? { fallback: site } : {}) });
    cleanup.push(() => cp.shutdown());
    const credentials = await ensureCredentials(cp.db, join(dataDir, "credentials.json"), cp.url);

    if (options.demo ?? true) {
      await deployApp(cp.db, credentials.workspaceId, {
        name: DEMO_APP,
        description: "Image style transfer (sketch, sepia, posterize, …) of a shipped photo or your own image; Cog HTTP protocol.",
        runtime: { kind: "process", command: [process.execPath, "--import", "tsx", join(ROOT, "examples/style-app/server.ts")], workingDir: ROOT },
        gpuCount: 1,
        gpuMinMemoryBytes: 8 * 1024 ** 3,
        gpuModels: [],
        env: {},
        inputSchema: undefined,
        timeoutMs: 0,
        maxAttempts: 3,
        queueTtlMs: 0,
      });
    }

    const specs = (options.workers ?? DEFAULT_DEV_WORKERS).map(parseSimulatedGpuSpec);
    for (const model of new Set(specs.map((spec) => spec.model))) {
      if (await priceAt(cp.db, model, new Date())) continue;
      const price = DEV_GPU_PRICES[model];
      if (price === undefined) logger.info({ gpuModel: model }, "dev network: no price known for this simulated GPU model; using the RTX 3090's");
      await setPrice(cp.db, model, price ?? RTX_3090_NANO_USD_PER_SECOND, "now");
    }

    const workerLogger = createWorkerLogger(env.NGPU_WORKER_LOG_LEVEL ?? "warn");
    const workers: Worker[] = [];
    for (const [i, spec] of specs.entries()) {
      const worker = await startWorker(
        {
          controlPlaneUrl: cp.url,
          enrollmentToken: credentials.enrollmentToken,
          name: `dev-worker-${i + 1}`,
          dataDir: join(dataDir, `worker-${i + 1}`),
          simulateGpus: [spec],
          nvidiaSmiPath: "nvidia-smi",
          maxConcurrentTasks: 0,
          logLevel: "warn",
        },
        { logger: workerLogger, appBaseEnv: env },
      );
      cleanup.push(() => worker.shutdown(5_000));
      workers.push(worker);
    }
    await Promise.all(workers.map((w) => w.ready));
    return {
      url: cp.url,
      credentials,
      dataDir,
      controlPlane: cp,
      workers,
      database: config.database.kind === "pglite" ? `embedded PGlite in ${config.database.dataDir}` : "Postgres at DATABASE_URL",
      nats: nats ? `local nats-server at ${nats.url}` : `NATS at ${natsUrl}`,
      shutdown: undo,
    };
  } catch (err) {
    await undo();
    throw err;
  }
}
