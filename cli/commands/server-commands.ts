import type { Command } from "commander";
import { ConfigError, loadControlPlaneConfig } from "../../control-plane/config.js";
import { startControlPlane } from "../../control-plane/control-plane.js";
import { dashboardSite } from "../dashboard-site.js";
import { createApiKey, createEnrollmentToken, createWorkspace } from "../../control-plane/db/credentials.js";
import { openDatabase } from "../../control-plane/db/database.js";
import { createLogger } from "../../control-plane/log.js";
import { main as workerMain } from "../../worker/main.js";
import { CliError, ExitCode } from "../errors.js";
import { parseExpiry, parseInteger } from "../parse.js";
import { DEFAULT_DEV_WORKERS, DEMO_APP, type DevNetwork, startDevNetwork } from "../dev/dev-network.js";

/**
 * Resolves on the first SIGINT/SIGTERM, or when the parent process goes away
 * (`npm start` killed with SIGTERM ends npm but does not pass the signal on);
 * a second signal exits at once.
 */
function untilSignal(onSecond: () => void): Promise<NodeJS.Signals | "parent-exited"> {
  return new Promise((resolve) => {
    let count = 0;
    const handler = (signal: NodeJS.Signals) => {
      if (++count > 1) onSecond();
      else resolve(signal);
    };
    process.on("SIGINT", handler);
    process.on("SIGTERM", handler);
    const parent = process.ppid;
    const watch = setInterval(() => {
      if (process.ppid !== parent) {
        clearInterval(watch);
        resolve("parent-exited");
      }
    }, 500);
    watch.unref();
  });
}

function banner(net: DevNetwork): string {
  const { url, apiKey } = net.credentials;
  const host = new URL(url).host;
  return `
NGPU local network is up
  API (gRPC, gRPC-Web, Connect): ${url}
  dashboard: ${url}/  (sign in with the API key below)
  database: ${net.database}
  NATS:     ${net.nats}
  workers:  ${net.workers.length} with simulated GPUs (${DEFAULT_DEV_WORKERS.join(", ")})
  demo app: ${DEMO_APP} (image style transfer, Cog HTTP protocol)
  API key:  ${apiKey}
  (saved with the URL in ${net.dataDir}/credentials.json, where the CLI finds it)

Try it, from another terminal in this folder:

  CLI:      npm run -s ngpu -- submit ${DEMO_APP} --input style=sketch --wait --output-dir out
            npm run -s ngpu -- nodes list
  grpcurl:  grpcurl -plaintext -H 'authorization: Bearer ${apiKey}' \\
              -d '{"app":"${DEMO_APP}","input":{"style":"sepia"}}' ${host} ngpu.v1.TaskService/SubmitTask
  buf curl: npx buf curl --http2-prior-knowledge --protocol grpc -H 'authorization: Bearer ${apiKey}' \\
              -d '{"app":"${DEMO_APP}","input":{"style":"sepia"}}' ${url}/ngpu.v1.TaskService/SubmitTask
  curl:     curl -s -H 'content-type: application/json' -H 'authorization: Bearer ${apiKey}' \\
              -d '{"task":{"app":"${DEMO_APP}","input":{"style":"oil"}},"waitMs":60000}' ${url}/ngpu.v1.TaskService/RunTask

Press Ctrl-C to stop.
`;
}

/** `dev`, `control-plane`, `worker` and `admin`: the commands that run the network itself. */
export function registerServerCommands(program: Command): void {
  program
    .command("dev")
    .description("run a whole local network: embedded Postgres (unless DATABASE_URL), a local nats-server (unless NATS_URL), the control plane, two simulated-GPU workers and the demo app")
    .option("--data-dir <dir>", "where the local network keeps its data (env NGPU_DATA_DIR, default ./.ngpu)")
    .option("--no-demo", "do not deploy the demo app")
    .action(async (opts: { dataDir?: string; demo: boolean }) => {
      const logger = createLogger({ level: process.env.NGPU_LOG_LEVEL ?? "warn" });
      process.stderr.write(process.env.DATABASE_URL ? "starting the local network…\n" : "starting the local network (the first start creates the embedded database: ~10 s)…\n");
      let net: DevNetwork;
      try {
        net = await startDevNetwork({ env: process.env, logger, demo: opts.demo, ...(opts.dataDir ? { dataDir: opts.dataDir } : {}) });
      } catch (err) {
        throw new CliError((err as Error).message);
      }
      process.stdout.write(banner(net));
      await untilSignal(() => process.exit(130));
      process.stderr.write("stopping…\n");
      await net.shutdown();
      process.stderr.write("stopped\n");
    });

  program
    .command("control-plane")
    .description("run one control-plane replica (needs DATABASE_URL and NATS_URL; listens on NGPU_LISTEN, default 127.0.0.1:7700)")
    .action(async () => {
      const logger = createLogger({ level: process.env.NGPU_LOG_LEVEL ?? "info" });
      let cp;
      try {
        const config = loadControlPlaneConfig(process.env);
        const site = await dashboardSite(logger);
        cp = await startControlPlane(config, { logger, ...(site ? { fallback: site } : {}) });
      } catch (err) {
        throw new CliError((err as Error).message, err instanceof ConfigError ? ExitCode.USAGE : ExitCode.FAILED);
      }
      const signal = await untilSignal(() => process.exit(130));
      logger.info({ signal }, "shutting down");
      await cp.shutdown();
    });

  program
    .command("worker")
    .description("run a GPU worker (the same as the ngpu-worker binary; see `ngpu worker --help`)")
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .argument("[args...]")
    .action(async (args: string[]) => {
      const code = await workerMain(args);
      if (code !== 0) throw new CliError("", code);
    });

  const admin = program.command("admin").description("operator commands working directly on the database at DATABASE_URL");
  admin
    .command("bootstrap")
    .description("create a workspace with an API key, and an enrollment token for workers; prints them once")
    .option("--workspace <name>", "workspace name", "default")
    .option("--operator", "make it an operator workspace (its keys may drain nodes)")
    .option("--token-uses <n>", "how many new workers the enrollment token admits (default 1)")
    .action(async (opts: { workspace: string; operator?: boolean; tokenUses?: string }) => {
      const url = process.env.DATABASE_URL;
      if (!url) throw new CliError("DATABASE_URL is not set", ExitCode.USAGE);
      const db = await openDatabase({ kind: "postgres", url, poolSize: 1 });
      try {
        const ws = await createWorkspace(db, opts.workspace, { operator: opts.operator === true });
        const key = await createApiKey(db, ws.id, "bootstrap");
        const token = await createEnrollmentToken(db, { name: "bootstrap", maxUses: opts.tokenUses ? parseInteger("--token-uses", opts.tokenUses, { min: 1, max: 10_000 }) : 1 });
        process.stdout.write(JSON.stringify({ workspaceId: ws.id, apiKey: key.key, enrollmentToken: token.token }, null, 2) + "\n");
      } finally {
        await db.destroy();
      }
    });

  admin
    .command("enrollment-token")
    .description("enrollment tokens: each admits new workers to the network")
    .command("create")
    .description("create an enrollment token (single-use unless --uses); prints it once")
    .option("--name <name>", "a name for the record", "")
    .option("--uses <n>", "how many new workers it admits", "1")
    .option("--expires <when>", "a duration from now (24h) or an ISO time; default never")
    .option("--provider <workspace-id>", "the workspace paid for these workers' GPU time (default: the operator)")
    .action(async (opts: { name: string; uses: string; expires?: string; provider?: string }) => {
      const url = process.env.DATABASE_URL;
      if (!url) throw new CliError("DATABASE_URL is not set: admin commands work on the database directly (with an operator API key, e.g. against npm start, use: ngpu keys enrollment-token)", ExitCode.USAGE);
      const maxUses = parseInteger("--uses", opts.uses, { min: 1, max: 10_000 });
      const expiresAt = opts.expires ? parseExpiry("--expires", opts.expires) : undefined;
      const db = await openDatabase({ kind: "postgres", url, poolSize: 1 });
      try {
        const token = await createEnrollmentToken(db, { name: opts.name, maxUses, ...(expiresAt ? { expiresAt } : {}), ...(opts.provider ? { providerWorkspaceId: opts.provider } : {}) });
        process.stdout.write(JSON.stringify({ tokenId: token.id, token: token.token, maxUses, expiresAt: token.expiresAt?.toISOString() ?? null }, null, 2) + "\n");
      } finally {
        await db.destroy();
      }
    });
}
