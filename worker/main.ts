import { hostname } from "node:os";
import { parseWorkerArgs, WORKER_USAGE, WorkerConfigError } from "./config.js";
import { createLogger } from "./log.js";
import { startWorker, WORKER_VERSION } from "./worker.js";

/**
 * The worker binary's entry: parse flags, start, and on SIGINT/SIGTERM drain
 * (running tasks get a grace period); a second signal stops at once.
 */
export async function main(argv: readonly string[]): Promise<number> {
  let config;
  try {
    config = parseWorkerArgs(argv, process.env, hostname());
  } catch (err) {
    if (err instanceof WorkerConfigError) {
      process.stderr.write(`ngpu-worker: ${err.message}\n\n${WORKER_USAGE}`);
      return 2;
    }
    throw err;
  }
  if (config === "help") {
    process.stdout.write(WORKER_USAGE);
    return 0;
  }
  if (config === "version") {
    process.stdout.write(`ngpu-worker ${WORKER_VERSION}\n`);
    return 0;
  }
  const logger = createLogger(config.logLevel);
  const worker = await startWorker(config, { logger, appBaseEnv: process.env });
  let signals = 0;
  const stopped = new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      signals++;
      if (signals === 2) {
        // Impatient: no more grace. Running attempts are handed back (to run elsewhere), then it stops.
        logger.warn({ signal }, "second signal: handing running tasks back and stopping now");
        worker.hurry();
        return;
      }
      if (signals > 2) {
        logger.warn({ signal }, "third signal: exiting");
        process.exit(130);
      }
      logger.info({ signal }, "signal received: stopping");
      void worker.shutdown().then(resolve);
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  });
  try {
    await Promise.race([worker.ready, stopped]);
  } catch (err) {
    logger.error({ err: (err as Error).message }, "cannot join the network");
    await worker.shutdown(0);
    return 1;
  }
  await stopped;
  logger.info("worker stopped");
  return 0;
}
