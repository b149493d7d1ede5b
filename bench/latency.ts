// Submit → start latency on an idle network: one control plane (this process),
// one worker in a child process, the builtin "echo" app on one GPU. Tasks are
// submitted one at a time; t0 is the wall clock just before the submit call,
// the start is the worker's own clock when it began executing the task
// (attempts.worker_started_at_ms, written from the worker's Finished report).
import { connect } from "@nats-io/transport-node";
import { benchClient, dbBackendCpuS, dbBackendTicks, dbCounters, deployEcho, startWorkerProcess, stopWorkerProcess } from "./common.js";
import { cpuSince, cpuSnapshot } from "./cpu.js";
import { NATS_URL, startBenchNetwork } from "./network.js";
import { Scope, sleep, wallMs } from "./scope.js";
import { distribution, median, pct, r2, type Result } from "./stats.js";

export interface LatencyOptions {
  readonly samples: number;
  readonly warmup: number;
  readonly gapMinMs: number;
  readonly gapMaxMs: number;
  readonly gpuSpec: string;
}

export const LATENCY_DEFAULTS: LatencyOptions = { samples: 500, warmup: 20, gapMinMs: 5, gapMaxMs: 15, gpuSpec: "NVIDIA GeForce RTX 3090:24GiB" };

/** The worker reports whole milliseconds (Date.now()); adding half a ms removes the truncation's bias. */
const WORKER_CLOCK_HALF_TICK_MS = 0.5;
const SAMPLE_TIMEOUT_MS = 30_000;

interface Sample {
  readonly taskId: string;
  readonly t0: number;
  readonly submitMs: number;
}

export async function runLatency(options: LatencyOptions): Promise<Result> {
  const scope = new Scope();
  try {
    const net = await startBenchNetwork(scope);
    const client = await benchClient(scope, net);
    await deployEcho(client);
    const workers = await startWorkerProcess(scope, net, 1, options.gpuSpec, "latency", 3600);

    // Task state signals (assigned, running, finished) tell the loop when a task is done,
    // without polling the database while the next sample is measured.
    const nc = await connect({ servers: NATS_URL, name: "ngpu-bench-latency" });
    scope.defer("nats connection", () => nc.close());
    const signals = new Map<string, number>();
    const waiting = new Map<string, () => void>();
    const at = `${net.prefix}.task.`.length;
    nc.subscribe(`${net.prefix}.task.*`, {
      callback: (err, msg) => {
        if (err) return;
        const id = msg.subject.slice(at);
        const n = (signals.get(id) ?? 0) + 1;
        signals.set(id, n);
        if (n >= 3) waiting.get(id)?.();
      },
    });
    await nc.flush();

    const done = async (taskId: string): Promise<void> => {
      if ((signals.get(taskId) ?? 0) >= 3) return;
      const deadline = performance.now() + SAMPLE_TIMEOUT_MS;
      const signalled = new Promise<void>((resolve) => waiting.set(taskId, resolve));
      try {
        // Normally the third signal arrives within milliseconds; the database is the fallback.
        for (;;) {
          const winner = await Promise.race([signalled.then(() => "signal"), sleep(250).then(() => "poll")]);
          if (winner === "signal") return;
          const r = await net.sql.query<{ state: string }>(`SELECT state FROM tasks WHERE id = $1`, [taskId]);
          const state = r.rows[0]?.state;
          if (state && ["SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT", "EXPIRED"].includes(state)) return;
          if (performance.now() > deadline) throw new Error(`task ${taskId} did not finish within ${SAMPLE_TIMEOUT_MS} ms`);
        }
      } finally {
        waiting.delete(taskId);
      }
    };

    await sleep(1000); // settle, as the peers' harness does
    const samples: Sample[] = [];
    const total = options.warmup + options.samples;
    const cpu0 = cpuSnapshot([net.cp.pid, workers.child.pid]);
    const cp0 = await net.cpStats();
    const db0 = await dbCounters(net);
    const pg0 = await dbBackendTicks(net);
    for (let i = 0; i < total; i++) {
      await sleep(options.gapMinMs + Math.random() * (options.gapMaxMs - options.gapMinMs));
      const t0 = wallMs();
      const p0 = performance.now();
      const { task } = await client.tasks.submit({ app: "echo", input: { i } });
      const submitMs = performance.now() - p0;
      await done(task.id);
      if (i >= options.warmup) samples.push({ taskId: task.id, t0, submitMs });
    }
    const cpu = cpuSince(cpu0);
    const pgS = dbBackendCpuS(pg0, await dbBackendTicks(net));
    const cp1 = await net.cpStats();
    await sleep(600); // Postgres publishes its statistics at most every 500 ms
    const db1 = await dbCounters(net);
    const workerStderr = { count: workers.child.stderr.count, first: workers.child.stderr.first[0] ?? "" };
    await stopWorkerProcess(workers);

    const rows = await net.sql.query<{
      id: string;
      state: string;
      attempts: number;
      created_ms: number;
      assigned_ms: number | null;
      worker_started_ms: string | null;
      cp_running_ms: number | null;
    }>(
      `SELECT t.id, t.state, t.attempt_count AS attempts,
         extract(epoch FROM t.created_at)::float8 * 1000 AS created_ms,
         extract(epoch FROM t.assigned_at)::float8 * 1000 AS assigned_ms,
         a.worker_started_at_ms AS worker_started_ms,
         extract(epoch FROM a.started_at)::float8 * 1000 AS cp_running_ms
       FROM tasks t LEFT JOIN attempts a ON a.id = t.current_attempt_id
       WHERE t.id = ANY($1)`,
      [samples.map((s) => s.taskId)],
    );
    const byId = new Map(rows.rows.map((r) => [r.id, r]));
    const latency: number[] = [];
    const toCreated: number[] = [];
    const createdToAssigned: number[] = [];
    const assignedToWorker: number[] = [];
    const workerToCp: number[] = [];
    let failed = 0;
    for (const s of samples) {
      const r = byId.get(s.taskId);
      if (!r || r.state !== "SUCCEEDED" || r.worker_started_ms === null || r.assigned_ms === null || r.cp_running_ms === null) {
        failed++;
        continue;
      }
      const workerStart = Number(r.worker_started_ms) + WORKER_CLOCK_HALF_TICK_MS;
      latency.push(workerStart - s.t0);
      toCreated.push(r.created_ms - s.t0);
      createdToAssigned.push(r.assigned_ms - r.created_ms);
      assignedToWorker.push(workerStart - r.assigned_ms);
      workerToCp.push(r.cp_running_ms - workerStart);
    }
    const d = distribution(latency);
    const submit = samples.map((s) => s.submitMs);
    return {
      part: "latency",
      samples: d.n,
      warmup: options.warmup,
      gap_ms: `${options.gapMinMs}-${options.gapMaxMs}`,
      failed_samples: failed,
      p50_ms: d.p50,
      p90_ms: d.p90,
      p99_ms: d.p99,
      max_ms: d.max,
      mean_ms: d.mean,
      submit_call_p50_ms: r2(pct(submit, 50)),
      submit_call_p99_ms: r2(pct(submit, 99)),
      // Where the time goes (medians; Postgres now() is a statement's transaction start).
      stage_submit_to_row_insert_p50_ms: r2(median(toCreated)),
      stage_insert_to_scheduler_round_p50_ms: r2(median(createdToAssigned)),
      stage_round_to_worker_start_p50_ms: r2(median(assignedToWorker)),
      stage_worker_start_to_cp_running_p50_ms: r2(median(workerToCp)),
      db_commits_per_task: r2((db1.commits - db0.commits) / total),
      cp_cpu_ms_per_task: r2(((cp1.cpuS - cp0.cpuS) * 1000) / total),
      cp_cpu_kernel_share_pct: r2((100 * (cp1.cpuSystemS - cp0.cpuSystemS)) / (cp1.cpuS - cp0.cpuS)),
      worker_proc_cpu_ms_per_task: r2(((cpu.pidCpuS.get(workers.child.pid) ?? Number.NaN) * 1000) / total),
      db_backends_cpu_ms_per_task: r2((pgS * 1000) / total),
      machine_busy_pct: cpu.machineBusyPct,
      other_busy_pct: cpu.otherBusyPct,
      cp_warnings: cp1.warnings,
      worker_stderr_lines: workerStderr.count,
      ...(workerStderr.count > 0 ? { worker_stderr_first: workerStderr.first.slice(0, 300) } : {}),
      ...(cp1.warnings > 0 ? { cp_warning_first: cp1.firstWarnings[0]!.slice(0, 300) } : {}),
    };
  } finally {
    await scope.close();
  }
}
