// Telemetry ingest: how many simulated GPUs reporting at 1 Hz one control-plane
// process keeps up with. A load generator (child process) ramps up worker
// streams; at each step the bench watches, for a measured window, whether every
// reading reaches the control plane's in-memory store (ingest rate, freshness of
// each GPU's latest reading), what it costs the control plane (CPU, event-loop
// delay), and whether the history writer (gpu_samples in Postgres) keeps up.
import { type Child, forkChild } from "./children.js";
import { dbBackendCpuS, dbBackendTicks } from "./common.js";
import { cpuSince, cpuSnapshot } from "./cpu.js";
import { type FromLoad, isType, type LoadStats, type ToLoad } from "./ipc.js";
import { type BenchNetwork, startBenchNetwork } from "./network.js";
import { Scope, sleep } from "./scope.js";
import { r2, type Result } from "./stats.js";

export interface TelemetryOptions {
  /** GPU counts to ramp through. */
  readonly steps: readonly number[];
  readonly gpusPerNode: number;
  readonly stepSeconds: number;
  readonly warmSeconds: number;
  /** Keep ramping after a step that was not sustained. */
  readonly continueAfterFailure: boolean;
}

export const TELEMETRY_DEFAULTS: TelemetryOptions = {
  steps: [1000, 2500, 5000, 10_000, 20_000],
  gpusPerNode: 8,
  stepSeconds: 10,
  warmSeconds: 3,
  continueAfterFailure: false,
};

async function loadStats(load: Child<ToLoad, FromLoad>): Promise<LoadStats> {
  load.send({ type: "stats" });
  return (await load.next(isType<FromLoad, "stats">("stats"), 30_000, "load stats")).stats;
}

/** How far the newest history row is behind now (the history writer's backlog), in seconds. */
async function historyLagS(net: BenchNetwork): Promise<number> {
  const r = await net.sql.query<{ lag: number | null }>(`SELECT extract(epoch FROM now() - max(time))::float8 AS lag FROM gpu_samples`);
  return r.rows[0]?.lag ?? Number.NaN;
}

async function historyRows(net: BenchNetwork, fromMs: number, toMs: number): Promise<number> {
  const r = await net.sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM gpu_samples WHERE time >= to_timestamp($1::float8 / 1000) AND time < to_timestamp($2::float8 / 1000)`, [
    fromMs,
    toMs,
  ]);
  return r.rows[0]!.n;
}

export interface TelemetryRun {
  readonly steps: Result[];
  readonly summary: Result;
}

export async function runTelemetry(options: TelemetryOptions): Promise<TelemetryRun> {
  const scope = new Scope();
  const steps: Result[] = [];
  let largest = 0;
  try {
    const net = await startBenchNetwork(scope);
    const load = forkChild<ToLoad, FromLoad>(scope, "telemetry-load.ts", [net.url, net.enrollmentToken, String(options.gpusPerNode), "3600"]);
    scope.defer("load generator stop", async () => {
      load.send({ type: "stop" });
      await load.stopped(10_000);
    });
    for (const gpus of options.steps) {
      const nodes = Math.ceil(gpus / options.gpusPerNode);
      load.send({ type: "grow", nodes });
      const grown = await load.next(isType<FromLoad, "grown">("grown"), 300_000, `${nodes} nodes joined`);
      await sleep(options.warmSeconds * 1000);

      const l0 = await loadStats(load);
      const c0 = await net.cpStats();
      const cpu0 = cpuSnapshot([net.cp.pid, load.pid]);
      const pg0 = await dbBackendTicks(net);
      const wall0 = Date.now();
      let worstStale = 0;
      let worstAgeMs = 0;
      let worstEldP99 = 0;
      let worstEldMax = 0;
      let storeGpus = Number.POSITIVE_INFINITY;
      for (let s = 0; s < options.stepSeconds; s++) {
        await sleep(1000);
        const c = await net.cpStats();
        worstStale = Math.max(worstStale, c.telemetry.staleOver2s);
        worstAgeMs = Math.max(worstAgeMs, c.telemetry.maxAgeMs);
        worstEldP99 = Math.max(worstEldP99, c.eventLoopDelayMs.p99);
        worstEldMax = Math.max(worstEldMax, c.eventLoopDelayMs.max);
        storeGpus = Math.min(storeGpus, c.telemetry.gpus);
      }
      const c1 = await net.cpStats();
      const l1 = await loadStats(load);
      const cpu = cpuSince(cpu0);
      const pgS = dbBackendCpuS(pg0, await dbBackendTicks(net));
      const wall1 = Date.now();
      const seconds = cpu.seconds;
      const lagS = await historyLagS(net);
      // History rows are written about a second after they arrive: count a window that ended 2 s ago.
      await sleep(2500);
      const rows = await historyRows(net, wall0, wall1 - 2000);
      const rowsExpected = grown.nodes * options.gpusPerNode * ((wall1 - 2000 - wall0) / 1000);

      const sentPerS = (l1.readings - l0.readings) / ((l1.atMs - l0.atMs) / 1000);
      const ingestPerS = (c1.telemetry.ingestedReadings - c0.telemetry.ingestedReadings) / ((c1.atMs - c0.atMs) / 1000);
      const target = grown.nodes * options.gpusPerNode;
      const generatorKeptUp = sentPerS >= 0.98 * target && l1.skipped === l0.skipped;
      const storeKeptUp = ingestPerS >= 0.98 * target && worstStale === 0 && storeGpus >= target;
      const historyKeptUp = rows >= 0.95 * rowsExpected;
      const sustained = generatorKeptUp && storeKeptUp && historyKeptUp;
      if (sustained) largest = Math.max(largest, target);
      const cpS = cpu.pidCpuS.get(net.cp.pid) ?? Number.NaN;
      const loadS = cpu.pidCpuS.get(load.pid) ?? Number.NaN;
      steps.push({
        part: "telemetry",
        gpus: target,
        nodes: grown.nodes,
        gpus_per_node: options.gpusPerNode,
        join_failures: grown.failed,
        join_s: r2(grown.ms / 1000),
        sent_readings_per_s: Math.round(sentPerS),
        ingested_per_s: Math.round(ingestPerS),
        gpus_in_store: storeGpus === Number.POSITIVE_INFINITY ? 0 : storeGpus,
        worst_stale_over_2s: worstStale,
        worst_reading_age_ms: Math.round(worstAgeMs),
        history_rows_pct: r2((100 * rows) / rowsExpected),
        history_lag_s: r2(lagS),
        cp_core_pct: r2((100 * cpS) / seconds),
        cp_eld_p99_ms: r2(worstEldP99),
        cp_eld_max_ms: r2(worstEldMax),
        cp_rss_mb: Math.round(c1.rssBytes / 1e6),
        load_gen_core_pct: r2((100 * loadS) / seconds),
        load_gen_max_late_ms: Math.round(l1.maxLateMs),
        load_gen_buffered_kb: Math.round(l1.buffered / 1024),
        db_backends_core_pct: r2((100 * pgS) / seconds),
        machine_busy_pct: cpu.machineBusyPct,
        other_busy_pct: cpu.otherBusyPct,
        rejections: l1.rejections,
        stream_errors: l1.streamErrors,
        cp_warnings: c1.warnings,
        ...(c1.warnings > 0 ? { cp_warning_first: c1.firstWarnings[0]!.slice(0, 200) } : {}),
        sustained: sustained ? "yes" : !generatorKeptUp ? "no (load generator fell behind)" : "no",
      });
      if (!sustained && !options.continueAfterFailure) break;
    }
    return {
      steps,
      summary: {
        part: "telemetry",
        kind: "summary",
        gpus_per_node: options.gpusPerNode,
        steps_tried: steps.map((s) => s.gpus).join(","),
        largest_sustained_gpus_at_1hz: largest,
      },
    };
  } finally {
    await scope.close();
  }
}
