// Sustained throughput of no-op tasks: the builtin "echo" app (one GPU per task)
// on 20 simulated workers in child processes. Like the peers' harness: enqueue N
// tasks first (timed: enqueue rate), then let the workers go and time the drain
// from the first task start until no task is left in a non-terminal state.
import type { NgpuClient } from "../sdk/index.js";
import { benchClient, dbBackendCpuS, dbBackendTicks, dbCounters, startWorkerProcess, stopWorkerProcess, TERMINAL_SQL, type WorkerProcess } from "./common.js";
import { cpuSince, cpuSnapshot } from "./cpu.js";
import { type BenchNetwork, startBenchNetwork } from "./network.js";
import { Scope, sleep, wallMs } from "./scope.js";
import { median, r2, type Result } from "./stats.js";

export interface ThroughputOptions {
  readonly tasks: number;
  readonly concurrency: number;
  readonly workers: number;
  readonly workerProcs: number;
  readonly gpuSpec: string;
  /** Tasks of the end-to-end variant (enqueue and drain at once); 0 skips it. */
  readonly e2eTasks: number;
  readonly dbPool: number;
}

export const THROUGHPUT_DEFAULTS: ThroughputOptions = {
  tasks: 20_000,
  concurrency: 64,
  workers: 20,
  workerProcs: 2,
  gpuSpec: "NVIDIA GeForce RTX 3090:24GiB:8",
  e2eTasks: 20_000,
  dbPool: 10,
};

const APP = "echo";
/** While the tasks are enqueued the app asks for a GPU model no worker has, so nothing runs before "go". */
const PAUSED_MODEL = "bench paused (no such GPU)";
const POLL_MS = 50;

async function deploy(client: NgpuClient, paused: boolean): Promise<void> {
  await client.apps.deploy({ name: APP, runtime: { builtin: { name: "echo" } }, gpu: { count: 1, allowedModels: paused ? [PAUSED_MODEL] : [] } });
}

/** Submits `count` tasks with at most `concurrency` calls in flight; returns the wall time it took (ms). */
async function enqueue(client: NgpuClient, count: number, concurrency: number, label: string): Promise<{ ms: number; errors: number }> {
  let next = 0;
  let errors = 0;
  let firstError = "";
  const t0 = wallMs();
  const lane = async () => {
    while (next < count) {
      const i = next++;
      try {
        await client.tasks.submit({ app: APP, input: { i }, labels: { run: label } });
      } catch (err) {
        errors++;
        firstError ||= (err as Error).message;
        if (errors > 100) throw new Error(`more than 100 submit errors; first: ${firstError}`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane));
  return { ms: wallMs() - t0, errors };
}

async function nonTerminal(net: BenchNetwork): Promise<number> {
  const r = await net.sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM tasks WHERE state NOT IN ${TERMINAL_SQL}`);
  return r.rows[0]!.n;
}

/**
 * A cheap "maybe unfinished" check for the 50 ms poll: a queued task, or an attempt not
 * ended (every ASSIGNED/STARTING/RUNNING task has one). Both use partial indexes, where
 * the exact count scans the whole (by then bloated) tasks table: at 20k tasks that scan
 * took ~19 ms, and 20 of them a second were a third of the database's CPU in the drain.
 */
async function maybeUnfinished(net: BenchNetwork): Promise<boolean> {
  const r = await net.sql.query<{ busy: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM tasks WHERE state = 'QUEUED') OR EXISTS (SELECT 1 FROM attempts WHERE ended_at IS NULL) AS busy`,
  );
  return r.rows[0]!.busy;
}

/**
 * Polls every 50 ms until no task is in a non-terminal state (the exact count
 * confirms what the cheap check says, and runs every second for progress);
 * returns the wall time 0 was seen, or NaN after a stall or the time bound.
 */
async function drained(net: BenchNetwork, timeoutMs: number, ready: () => boolean = () => true): Promise<{ endMs: number; left: number; pollMsMean: number }> {
  const deadline = performance.now() + timeoutMs;
  let last = Number.NaN;
  let lastChange = performance.now();
  let lastCount = 0;
  let polls = 0;
  let pollMs = 0;
  for (;;) {
    const t0 = performance.now();
    const busy = await maybeUnfinished(net);
    polls++;
    pollMs += performance.now() - t0;
    if (!busy || performance.now() - lastCount >= 1000) {
      lastCount = performance.now();
      const left = await nonTerminal(net);
      const at = wallMs();
      if (left === 0 && ready()) return { endMs: at, left, pollMsMean: pollMs / polls };
      if (left !== last) {
        last = left;
        lastChange = performance.now();
      }
      // No progress for 60 s, or past the overall bound: give up and report what is left.
      if (performance.now() > deadline || performance.now() - lastChange > 60_000) return { endMs: Number.NaN, left, pollMsMean: pollMs / polls };
    }
    await sleep(POLL_MS);
  }
}

interface Verification {
  readonly succeeded: number;
  readonly notSucceeded: number;
  readonly tasksWithOtherThanOneAttempt: number;
  readonly firstStartMs: number;
  readonly lastEndMs: number;
  readonly perSecondMedian: number;
  readonly perSecondPeak: number;
  /** Scheduling rounds that placed at least one of these tasks (attempts of one round share created_at). */
  readonly placingRounds: number;
}

async function verify(net: BenchNetwork, label: string): Promise<Verification> {
  const counts = await net.sql.query<{ succeeded: number; other: number; bad_attempts: number }>(
    `SELECT count(*) FILTER (WHERE t.state = 'SUCCEEDED')::int AS succeeded,
            count(*) FILTER (WHERE t.state <> 'SUCCEEDED')::int AS other,
            count(*) FILTER (WHERE t.attempt_count <> 1 OR (SELECT count(*) FROM attempts a WHERE a.task_id = t.id) <> 1)::int AS bad_attempts
     FROM tasks t WHERE t.labels->>'run' = $1`,
    [label],
  );
  const times = await net.sql.query<{ first_start: string; last_end: number; rounds: number }>(
    `SELECT min(a.worker_started_at_ms) AS first_start, extract(epoch FROM max(t.ended_at))::float8 * 1000 AS last_end,
            count(DISTINCT a.created_at)::int AS rounds
     FROM tasks t JOIN attempts a ON a.task_id = t.id WHERE t.labels->>'run' = $1`,
    [label],
  );
  // Completions per whole second, between the first and the last full second.
  const perSecond = await net.sql.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM tasks WHERE labels->>'run' = $1 AND ended_at IS NOT NULL
     GROUP BY date_trunc('second', ended_at) ORDER BY date_trunc('second', ended_at)`,
    [label],
  );
  const seconds = perSecond.rows.map((r) => r.n).slice(1, -1);
  const c = counts.rows[0]!;
  const t = times.rows[0]!;
  return {
    succeeded: c.succeeded,
    notSucceeded: c.other,
    tasksWithOtherThanOneAttempt: c.bad_attempts,
    firstStartMs: Number(t.first_start),
    lastEndMs: t.last_end,
    perSecondMedian: seconds.length ? median(seconds) : Number.NaN,
    perSecondPeak: seconds.length ? Math.max(...seconds) : Number.NaN,
    placingRounds: t.rounds,
  };
}

export async function runThroughput(options: ThroughputOptions): Promise<Result[]> {
  const scope = new Scope();
  const results: Result[] = [];
  try {
    const net = await startBenchNetwork(scope, { poolSize: options.dbPool });
    const client = await benchClient(scope, net);
    const config = `${options.workers} workers x "${options.gpuSpec}" in ${options.workerProcs} procs, app echo gpu=1, submit concurrency ${options.concurrency}, cp db pool ${options.dbPool}`;
    const boundMs = 120_000 + options.tasks * 20;

    // 1. Enqueue, nothing running.
    await deploy(client, true);
    const enqCpu0 = cpuSnapshot([net.cp.pid]);
    const enqDb0 = await dbCounters(net);
    const enqPg0 = await dbBackendTicks(net);
    const enq = await enqueue(client, options.tasks, options.concurrency, "drain");
    const enqCpu = cpuSince(enqCpu0);
    const enqPgS = dbBackendCpuS(enqPg0, await dbBackendTicks(net));
    await sleep(600); // Postgres publishes its statistics at most every 500 ms
    const enqDb1 = await dbCounters(net);

    // 2. Workers join (child processes), idle.
    const procs: WorkerProcess[] = [];
    const perProc = Math.ceil(options.workers / options.workerProcs);
    const starts: Array<Promise<WorkerProcess>> = [];
    for (let p = 0, left = options.workers; p < options.workerProcs && left > 0; p++, left -= perProc) {
      starts.push(startWorkerProcess(scope, net, Math.min(perProc, left), options.gpuSpec, `tp${p}`, 3600));
    }
    procs.push(...(await Promise.all(starts)));
    scope.defer("stop worker processes", () => Promise.allSettled(procs.map(stopWorkerProcess)).then(() => undefined));
    await sleep(1000);

    // 3. Go: the app now fits every GPU; time the drain.
    const cpu0 = cpuSnapshot([net.cp.pid, ...procs.map((p) => p.child.pid)]);
    const cp0 = await net.cpStats();
    const db0 = await dbCounters(net);
    const pg0 = await dbBackendTicks(net);
    await deploy(client, false);
    net.cp.send({ type: "wake" });
    const end = await drained(net, boundMs);
    const cpu = cpuSince(cpu0);
    const pgS = dbBackendCpuS(pg0, await dbBackendTicks(net));
    const cp1 = await net.cpStats();
    await sleep(600); // Postgres publishes its statistics at most every 500 ms
    const db1 = await dbCounters(net);
    const workerCpuS = procs.reduce((s, p) => s + (cpu.pidCpuS.get(p.child.pid) ?? Number.NaN), 0);
    const v = await verify(net, "drain");
    const drainS = (end.endMs - v.firstStartMs) / 1000;
    results.push({
      part: "throughput",
      variant: "drain (enqueue first, then go)",
      config,
      tasks: options.tasks,
      enqueue_per_s: Math.round(options.tasks / (enq.ms / 1000)),
      enqueue_errors: enq.errors,
      enqueue_cp_cpu_ms_per_task: r2(((enqCpu.pidCpuS.get(net.cp.pid) ?? Number.NaN) * 1000) / options.tasks),
      enqueue_db_backends_cpu_ms_per_task: r2((enqPgS * 1000) / options.tasks),
      enqueue_client_cpu_ms_per_task: r2((enqCpu.benchProcessCpuS * 1000) / options.tasks),
      enqueue_db_commits_per_task: r2((enqDb1.commits - enqDb0.commits) / options.tasks),
      enqueue_machine_busy_pct: enqCpu.machineBusyPct,
      enqueue_other_busy_pct: enqCpu.otherBusyPct,
      drain_per_s: Number.isFinite(end.endMs) ? Math.round(options.tasks / drainS) : Number.NaN,
      drain_s: r2(drainS),
      drain_by_db_timestamps_per_s: Math.round(options.tasks / ((v.lastEndMs - v.firstStartMs) / 1000)),
      poll_query_ms_mean: r2(end.pollMsMean),
      left_unfinished: end.left,
      completions_per_s_median: v.perSecondMedian,
      completions_per_s_peak: v.perSecondPeak,
      succeeded: v.succeeded,
      not_succeeded: v.notSucceeded,
      tasks_without_exactly_one_attempt: v.tasksWithOtherThanOneAttempt,
      scheduler_rounds_that_placed: v.placingRounds,
      db_commits_per_task: r2((db1.commits - db0.commits) / options.tasks),
      db_rows_updated_per_task: r2((db1.updated - db0.updated) / options.tasks),
      machine_busy_pct: cpu.machineBusyPct,
      other_busy_pct: cpu.otherBusyPct,
      cp_cpu_s: r2(cp1.cpuS - cp0.cpuS),
      cp_cpu_ms_per_task: r2(((cp1.cpuS - cp0.cpuS) * 1000) / options.tasks),
      cp_cpu_kernel_share_pct: r2((100 * (cp1.cpuSystemS - cp0.cpuSystemS)) / (cp1.cpuS - cp0.cpuS)),
      cp_event_loop_delay_p99_ms: r2(cp1.eventLoopDelayMs.p99),
      worker_procs_cpu_ms_per_task: r2((workerCpuS * 1000) / options.tasks),
      db_backends_cpu_ms_per_task: r2((pgS * 1000) / options.tasks),
      all_postgres_cpu_ms_per_task: r2((cpu.postgresCpuS * 1000) / options.tasks),
      nats_cpu_ms_per_task: r2((cpu.natsCpuS * 1000) / options.tasks),
      bench_driver_cpu_s: cpu.benchProcessCpuS,
      cp_warnings: cp1.warnings,
      worker_stderr_lines: procs.reduce((s, p) => s + p.child.stderr.count, 0),
    });

    // 4. End to end: enqueue while the workers drain, until every task ended.
    if (options.e2eTasks > 0 && end.left === 0) {
      const e2eCpu0 = cpuSnapshot([net.cp.pid, ...procs.map((p) => p.child.pid)]);
      const e2eCp0 = await net.cpStats();
      const e2ePg0 = await dbBackendTicks(net);
      const t0 = wallMs();
      // Zero left only counts once everything is submitted.
      let submitted = false;
      const e2eEnqP = enqueue(client, options.e2eTasks, options.concurrency, "e2e").finally(() => (submitted = true));
      const [e2eEnq, e2eEnd] = await Promise.all([e2eEnqP, drained(net, 120_000 + options.e2eTasks * 20, () => submitted)]);
      const e2eCpu = cpuSince(e2eCpu0);
      const e2eCp1 = await net.cpStats();
      const e2ePgS = dbBackendCpuS(e2ePg0, await dbBackendTicks(net));
      const ve = await verify(net, "e2e");
      results.push({
        part: "throughput",
        variant: "end to end (enqueue and drain at once)",
        config,
        tasks: options.e2eTasks,
        enqueue_per_s: Math.round(options.e2eTasks / (e2eEnq.ms / 1000)),
        enqueue_errors: e2eEnq.errors,
        end_to_end_per_s: Number.isFinite(e2eEnd.endMs) ? Math.round(options.e2eTasks / ((e2eEnd.endMs - t0) / 1000)) : Number.NaN,
        end_to_end_s: r2((e2eEnd.endMs - t0) / 1000),
        left_unfinished: e2eEnd.left,
        completions_per_s_median: ve.perSecondMedian,
        succeeded: ve.succeeded,
        not_succeeded: ve.notSucceeded,
        tasks_without_exactly_one_attempt: ve.tasksWithOtherThanOneAttempt,
        machine_busy_pct: e2eCpu.machineBusyPct,
        other_busy_pct: e2eCpu.otherBusyPct,
        cp_cpu_ms_per_task: r2(((e2eCp1.cpuS - e2eCp0.cpuS) * 1000) / options.e2eTasks),
        db_backends_cpu_ms_per_task: r2((e2ePgS * 1000) / options.e2eTasks),
        all_postgres_cpu_ms_per_task: r2((e2eCpu.postgresCpuS * 1000) / options.e2eTasks),
        bench_driver_cpu_s: e2eCpu.benchProcessCpuS,
        cp_warnings: e2eCp1.warnings,
      });
    }
    return results;
  } finally {
    await scope.close();
  }
}
