// NGPU benchmarks: `npm run bench -- [latency|throughput|telemetry|failover|worker|all] [options]`.
// Each part prints a table and one JSON line per result (prefixed "BENCH ").
// See docs/BENCHMARKS.md for what each part measures.
import { appendFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { environment } from "./environment.js";
import { LATENCY_DEFAULTS, runLatency } from "./latency.js";
import { median, printColumns, printTable, r2, type Result } from "./stats.js";
import { runTelemetry, TELEMETRY_DEFAULTS } from "./telemetry.js";
import { runThroughput, THROUGHPUT_DEFAULTS } from "./throughput.js";
import { runWorkerBinary, WORKER_BINARY_DEFAULTS } from "./worker-binary.js";
import { FAILOVER_DEFAULTS, runFailover } from "./failover.js";
import { runWebhooks, WEBHOOKS_DEFAULTS } from "./webhooks.js";
import { POOLS_DEFAULTS, runPools } from "./pools.js";
import { runUsage, USAGE_DEFAULTS } from "./usage.js";

const PARTS = ["latency", "throughput", "telemetry", "failover", "worker", "webhooks", "pools", "usage"] as const;
type Part = (typeof PARTS)[number];

const USAGE = `Usage: npm run bench -- [latency|throughput|telemetry|failover|worker|webhooks|pools|usage|all] [options]

Parts (default all):
  latency      submit → start latency on an idle network (1 worker)
  throughput   no-op task throughput with 20 simulated workers
  telemetry    GPU telemetry ingest of one control plane, ramped
  failover     SIGKILL of a worker running a task → the task running on another node
  worker       the worker binary: size, start-up time, idle RSS
  webhooks     the outbox trigger's cost to batched task updates; delivery drain rate
  pools        an elastic app pool on a simulated fleet of 200 workers under a burst of 5000 tasks
  usage        metering: load 10M usage records (a sample through the real write path), then
               time a month of hourly summaries for one workspace

Options:
  --runs N               repeat latency/throughput N times, print the median too (default 1)
  --out FILE             also append the JSON lines to FILE
  latency:    --samples N (500) --warmup N (20) --gap-ms MIN-MAX (5-15)
  throughput: --tasks N (20000) --concurrency N (64) --workers N (20) --worker-procs N (2)
              --gpu-spec SPEC ("NVIDIA GeForce RTX 3090:24GiB:8") --e2e-tasks N (same as --tasks; 0 skips)
              --db-pool N (10)
  telemetry:  --steps LIST (1000,2500,5000,10000,20000 GPUs) --gpus-per-node N (8)
              --step-seconds N (10) --warm-seconds N (3) --keep-going (ramp on after a failed step)
  failover:   --trials N (20) --failover-workers N (3)
  worker:     --startup-runs N (20) --idle-seconds N (5) --build (rebuild dist/ngpu-worker first)
  webhooks:   --webhook-tasks N (10000) --webhook-rounds N (5) --webhook-deliveries N (5000)
  pools:      --workers N (200) --worker-procs N (4) --tasks N (5000) --rate N tasks/s (40) --task-ms N (500)
              --cold-start-ms N (2000) --pool-min N (2) --pool-max N (150) --target-delay-ms N (2000) --idle-ms N (5000)
              --no-pool (baseline: the same burst for an app without a pool)
  usage:      --records N (10000000) --real-path-records N (200000) --batch N (500) --queries N (200)

Environment:
  NGPU_BENCH_PG_URL            admin URL of the Postgres server (default postgres://postgres@127.0.0.1:5432/postgres)
  NGPU_BENCH_NATS_URL          NATS server (default nats://127.0.0.1:4222); both must be loopback
  NGPU_BENCH_CPU_PROF_DIR      write V8 CPU profiles of the control plane and the other child processes there
  NGPU_BENCH_PG_LOG_STATEMENTS 1: Postgres logs every statement of the bench database with its duration
  NGPU_BENCH_CP_LOG_LEVEL      control-plane log level (default warn; lines are counted, not printed)
`;

function int(values: Record<string, unknown>, name: string, fallback: number, min: number, max: number): number {
  const raw = values[name];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be an integer from ${min} to ${max}`);
  return n;
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    args: process.argv.slice(2),
    allowPositionals: true,
    options: {
      runs: { type: "string" },
      out: { type: "string" },
      samples: { type: "string" },
      warmup: { type: "string" },
      "gap-ms": { type: "string" },
      tasks: { type: "string" },
      concurrency: { type: "string" },
      workers: { type: "string" },
      "worker-procs": { type: "string" },
      trials: { type: "string" },
      "failover-workers": { type: "string" },
      "gpu-spec": { type: "string" },
      "e2e-tasks": { type: "string" },
      "db-pool": { type: "string" },
      steps: { type: "string" },
      "gpus-per-node": { type: "string" },
      "step-seconds": { type: "string" },
      "warm-seconds": { type: "string" },
      "startup-runs": { type: "string" },
      "idle-seconds": { type: "string" },
      build: { type: "boolean" },
      "webhook-tasks": { type: "string" },
      "webhook-rounds": { type: "string" },
      "webhook-deliveries": { type: "string" },
      records: { type: "string" },
      "real-path-records": { type: "string" },
      batch: { type: "string" },
      queries: { type: "string" },
      "keep-going": { type: "boolean" },
      rate: { type: "string" },
      "task-ms": { type: "string" },
      "cold-start-ms": { type: "string" },
      "pool-min": { type: "string" },
      "pool-max": { type: "string" },
      "target-delay-ms": { type: "string" },
      "idle-ms": { type: "string" },
      "no-pool": { type: "boolean" },
      help: { type: "boolean" },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const which = positionals[0] ?? "all";
  if (positionals.length > 1 || (which !== "all" && !(PARTS as readonly string[]).includes(which))) {
    process.stderr.write(USAGE);
    return 2;
  }
  const parts: Part[] = which === "all" ? [...PARTS] : [which as Part];
  const runs = int(values, "runs", 1, 1, 10);
  const emit = (r: Result) => {
    const line = JSON.stringify({ date: new Date().toISOString(), node: process.version, ...r });
    process.stdout.write(`BENCH ${line}\n`);
    if (values.out) appendFileSync(values.out, line + "\n");
  };
  // Runs a part `runs` times; each run gives one or more results (variants), printed as they come.
  const repeat = async (name: string, run: () => Promise<Result | Result[]>) => {
    const byVariant = new Map<string, Result[]>();
    for (let i = 1; i <= runs; i++) {
      const got = await run();
      for (const one of Array.isArray(got) ? got : [got]) {
        const r: Result = { ...one, ...(runs > 1 ? { run: i } : {}) };
        const variant = typeof r.variant === "string" ? r.variant : "";
        printTable(`${name}${variant ? `: ${variant}` : ""}${runs > 1 ? ` (run ${i}/${runs})` : ""}`, Object.entries(r));
        emit(r);
        byVariant.set(variant, [...(byVariant.get(variant) ?? []), r]);
      }
    }
    if (runs === 1) return;
    for (const [variant, results] of byVariant) {
      const med: Result = { part: String(results[0]!.part), ...(variant ? { variant } : {}), kind: "median", runs: results.length };
      for (const [k, v] of Object.entries(results[0]!)) {
        if (typeof v === "number" && k !== "run") med[k] = r2(median(results.map((r) => Number(r[k]))));
      }
      printTable(`${name}${variant ? `: ${variant}` : ""} (median of ${results.length})`, Object.entries(med));
      emit(med);
    }
  };

  const env = await environment();
  printTable("environment", Object.entries(env));
  emit(env);
  if (Number(env.load_average_1m) > Number(env.cores) * 0.5) {
    process.stdout.write(`note: the machine is already busy (load ${env.load_average_1m} on ${env.cores} cores); expect noisy numbers\n`);
  }

  const runPart = async (part: Part) => {
    if (part === "latency") {
      const gap = (values["gap-ms"] ?? `${LATENCY_DEFAULTS.gapMinMs}-${LATENCY_DEFAULTS.gapMaxMs}`).split("-").map(Number);
      if (gap.length !== 2 || !gap.every((g) => Number.isFinite(g) && g >= 0 && g <= 10_000) || gap[0]! > gap[1]!) throw new Error("--gap-ms must be MIN-MAX in ms");
      await repeat("submit → start latency, idle network", () =>
        runLatency({
          ...LATENCY_DEFAULTS,
          samples: int(values, "samples", LATENCY_DEFAULTS.samples, 1, 100_000),
          warmup: int(values, "warmup", LATENCY_DEFAULTS.warmup, 0, 10_000),
          gapMinMs: gap[0]!,
          gapMaxMs: gap[1]!,
        }),
      );
    }
    if (part === "throughput") {
      const tasks = int(values, "tasks", THROUGHPUT_DEFAULTS.tasks, 1, 1_000_000);
      await repeat("no-op task throughput", () =>
        runThroughput({
          tasks,
          concurrency: int(values, "concurrency", THROUGHPUT_DEFAULTS.concurrency, 1, 1024),
          workers: int(values, "workers", THROUGHPUT_DEFAULTS.workers, 1, 200),
          workerProcs: int(values, "worker-procs", THROUGHPUT_DEFAULTS.workerProcs, 1, 16),
          gpuSpec: values["gpu-spec"] ?? THROUGHPUT_DEFAULTS.gpuSpec,
          e2eTasks: int(values, "e2e-tasks", tasks, 0, 1_000_000),
          dbPool: int(values, "db-pool", THROUGHPUT_DEFAULTS.dbPool, 1, 100),
        }),
      );
    }
    if (part === "telemetry") {
      const steps = (values.steps ?? TELEMETRY_DEFAULTS.steps.join(",")).split(",").map(Number);
      if (!steps.every((n) => Number.isInteger(n) && n >= 1 && n <= 200_000)) throw new Error("--steps must be GPU counts from 1 to 200000, comma-separated");
      const run = await runTelemetry({
        ...TELEMETRY_DEFAULTS,
        steps,
        gpusPerNode: int(values, "gpus-per-node", TELEMETRY_DEFAULTS.gpusPerNode, 1, 64),
        stepSeconds: int(values, "step-seconds", TELEMETRY_DEFAULTS.stepSeconds, 1, 600),
        warmSeconds: int(values, "warm-seconds", TELEMETRY_DEFAULTS.warmSeconds, 1, 60),
        continueAfterFailure: values["keep-going"] === true,
      });
      const columns = [...new Set(run.steps.flatMap((r) => Object.keys(r)))].filter((k) => k !== "part" && k !== "cp_warning_first");
      printColumns("telemetry ingest, one control-plane process (one column per step, over its measured window)", run.steps, columns);
      printTable("telemetry ingest: summary", Object.entries(run.summary));
      for (const r of [...run.steps, run.summary]) emit(r);
    }
    if (part === "failover") {
      const r = await runFailover({
        trials: int(values, "trials", FAILOVER_DEFAULTS.trials, 1, 1000),
        workers: int(values, "failover-workers", FAILOVER_DEFAULTS.workers, 2, 32),
      });
      printTable("failover", Object.entries(r));
      emit(r);
    }
    if (part === "webhooks") {
      const results = await runWebhooks({
        ...WEBHOOKS_DEFAULTS,
        tasks: int(values, "webhook-tasks", WEBHOOKS_DEFAULTS.tasks, 1000, 1_000_000),
        rounds: int(values, "webhook-rounds", WEBHOOKS_DEFAULTS.rounds, 1, 100),
        deliveries: int(values, "webhook-deliveries", WEBHOOKS_DEFAULTS.deliveries, 1, 1_000_000),
      });
      for (const r of results) {
        printTable(`webhooks: ${String(r.variant)}`, Object.entries(r));
        emit(r);
      }
    }
    if (part === "pools") {
      const d = POOLS_DEFAULTS;
      await repeat("elastic pool under a burst", () =>
        runPools({
          workers: int(values, "workers", d.workers, 1, 1000),
          workerProcs: int(values, "worker-procs", d.workerProcs, 1, 16),
          tasks: int(values, "tasks", d.tasks, 1, 1_000_000),
          rate: int(values, "rate", d.rate, 1, 100_000),
          taskMs: int(values, "task-ms", d.taskMs, 0, 600_000),
          coldStartMs: int(values, "cold-start-ms", d.coldStartMs, 0, 600_000),
          minNodes: int(values, "pool-min", d.minNodes, 0, 10_000),
          maxNodes: int(values, "pool-max", d.maxNodes, 1, 10_000),
          targetQueueDelayMs: int(values, "target-delay-ms", d.targetQueueDelayMs, 1, 3_600_000),
          idleTimeoutMs: int(values, "idle-ms", d.idleTimeoutMs, 0, 3_600_000),
          noPool: values["no-pool"] === true,
        }),
      );
    }
    if (part === "worker") {
      const r = await runWorkerBinary({
        startupRuns: int(values, "startup-runs", WORKER_BINARY_DEFAULTS.startupRuns, 1, 1000),
        idleSeconds: int(values, "idle-seconds", WORKER_BINARY_DEFAULTS.idleSeconds, 1, 600),
        build: values.build === true,
      });
      printTable("worker binary", Object.entries(r));
      emit(r);
    }
    if (part === "usage") {
      const results = await runUsage(
        {
          records: int(values, "records", USAGE_DEFAULTS.records, 1, 100_000_000),
          realPathRecords: int(values, "real-path-records", USAGE_DEFAULTS.realPathRecords, 1, 10_000_000),
          batch: int(values, "batch", USAGE_DEFAULTS.batch, 1, 10_000),
          queries: int(values, "queries", USAGE_DEFAULTS.queries, 1, 100_000),
        },
        (line) => process.stdout.write(`usage: ${line}\n`),
      );
      for (const r of results) {
        printTable(`metering: ${String(r.variant)}`, Object.entries(r));
        emit(r);
      }
    }
  };
  let failed = 0;
  for (const part of parts) {
    try {
      await runPart(part);
    } catch (err) {
      failed++;
      process.stderr.write(`bench: part ${part} failed: ${(err as Error).stack ?? String(err)}\n`);
      emit({ part, error: (err as Error).message });
    }
  }
  return failed > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
