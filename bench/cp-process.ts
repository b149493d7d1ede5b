// The control plane under test, alone in its own process (as in production), so
// the bench's client, polling and bookkeeping do not share its event loop. Besides
// serving, it answers the bench's "stats" requests over IPC: its CPU time,
// event-loop delay, logged warnings, and the freshness of its in-memory GPU
// telemetry store. Stops on "stop", when the bench goes away, or after MAX_SECONDS.
//
//   node --import tsx bench/cp-process.ts DATABASE_URL NATS_URL NATS_PREFIX POOL_SIZE MAX_SECONDS
import { monitorEventLoopDelay } from "node:perf_hooks";
import { Writable } from "node:stream";
import { loadControlPlaneConfig } from "../control-plane/config.js";
import { type ControlPlane, startControlPlane } from "../control-plane/control-plane.js";
import { createApiKey, createEnrollmentToken, createWorkspace } from "../control-plane/db/credentials.js";
import { createLogger } from "../control-plane/log.js";
import type { CpStats, FromCp, ToCp } from "./ipc.js";

const [databaseUrl = "", natsUrl = "", prefix = "", poolText = "10", maxSecondsText = "3600"] = process.argv.slice(2);
const send = (m: FromCp) => process.send?.(m);

// Warnings and errors go to a counter, not a terminal: a flood of them would distort the run.
const logged = { count: 0, first: [] as string[] };
const sink = new Writable({
  write(chunk: Buffer, _enc, done) {
    for (const line of chunk.toString("utf8").split("\n")) {
      if (!line.trim()) continue;
      logged.count++;
      if (logged.first.length < 5) logged.first.push(line.slice(0, 400));
    }
    done();
  },
});

const eld = monitorEventLoopDelay({ resolution: 10 });
eld.enable();
let cp: ControlPlane | undefined;
let ingested = 0;
let stopping = false;

function stats(): CpStats {
  const cpu = process.cpuUsage();
  const out: CpStats = {
    atMs: performance.timeOrigin + performance.now(),
    cpuS: (cpu.user + cpu.system) / 1e6,
    cpuSystemS: cpu.system / 1e6,
    rssBytes: process.memoryUsage().rss,
    eventLoopDelayMs: { p50: eld.percentile(50) / 1e6, p99: eld.percentile(99) / 1e6, max: eld.max / 1e6 },
    warnings: logged.count,
    firstWarnings: logged.first,
    connectedNodes: 0,
    telemetry: { gpus: 0, staleOver2s: 0, maxAgeMs: 0, ingestedReadings: ingested },
  };
  eld.reset();
  if (!cp) return out;
  const nodes = cp.gateway.connectedNodes();
  const now = Date.now();
  let gpus = 0;
  let stale = 0;
  let maxAge = 0;
  for (const node of nodes) {
    for (const reading of cp.telemetry.latest(node)) {
      gpus++;
      const at = reading.time ? Number(reading.time.seconds) * 1000 + reading.time.nanos / 1e6 : 0;
      const age = now - at;
      if (age > 2000) stale++;
      if (age > maxAge) maxAge = age;
    }
  }
  return { ...out, connectedNodes: nodes.length, telemetry: { gpus, staleOver2s: stale, maxAgeMs: maxAge, ingestedReadings: ingested } };
}

async function stop(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    await Promise.race([cp?.shutdown(), new Promise((r) => setTimeout(r, 10_000))]);
    send({ type: "stopped" });
  }
  setTimeout(() => process.exit(code), 100);
  return new Promise<never>(() => {});
}

process.on("message", (m: ToCp) => {
  if (m.type === "stats") send({ type: "stats", stats: stats() });
  else if (m.type === "wake") cp?.scheduler.wake();
  else if (m.type === "stop") void stop(0);
});
process.on("disconnect", () => void stop(0));
setTimeout(() => void stop(3), Number(maxSecondsText) * 1000).unref();

try {
  const logger = createLogger({ level: process.env.NGPU_BENCH_CP_LOG_LEVEL ?? "warn", destination: sink });
  // The production defaults for everything not set here (as `ngpu control-plane` reads its environment).
  const config = loadControlPlaneConfig({
    DATABASE_URL: databaseUrl,
    NGPU_DB_POOL_SIZE: poolText,
    NATS_URL: natsUrl,
    NGPU_NATS_PREFIX: prefix,
    NGPU_LISTEN: "127.0.0.1:0",
    NGPU_LOG_LEVEL: "warn",
  });
  cp = await startControlPlane(config, { logger });
  // Count the readings the store takes in (the control plane calls telemetry.ingest for every report it gets from the bus).
  const store = cp.telemetry;
  const ingest = store.ingest.bind(store);
  store.ingest = (nodeId, readings) => {
    ingested += readings.length;
    ingest(nodeId, readings);
  };
  const ws = await createWorkspace(cp.db, "bench");
  const key = await createApiKey(cp.db, ws.id, "bench");
  const enrollment = await createEnrollmentToken(cp.db, { name: "bench workers", maxUses: 100_000 });
  send({ type: "ready", url: cp.url, apiKey: key.key, enrollmentToken: enrollment.token });
} catch (err) {
  send({ type: "failed", error: (err as Error).message });
  await stop(1);
}
