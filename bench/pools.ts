// Elastic pools under a burst: a simulated fleet (real workers with simulated GPUs,
// many per process, speaking the real worker protocol) joins an idle control
// plane; one app with a pool (min warm nodes, a hard max, a target queue delay,
// a simulated cold start) gets a burst of tasks at a steady rate. Measured: time
// from the first task to the first scale-up beyond the minimum, the most nodes the
// pool held (and the most distinct nodes running its tasks at once), queue delay
// (created → assigned) overall and once the pool was warm, and the time from the
// last task's end back to the minimum.
import { benchClient, startWorkerProcess, type WorkerProcess } from "./common.js";
import { startBenchNetwork } from "./network.js";
import { Scope, sleep, waitFor } from "./scope.js";
import { distribution, r2, type Result } from "./stats.js";

export interface PoolsOptions {
  readonly workers: number;
  readonly workerProcs: number;
  readonly tasks: number;
  /** Tasks submitted per second. */
  readonly rate: number;
  /** How long each task runs, ms. */
  readonly taskMs: number;
  readonly coldStartMs: number;
  readonly minNodes: number;
  readonly maxNodes: number;
  readonly targetQueueDelayMs: number;
  readonly idleTimeoutMs: number;
  /** Baseline: the same burst on the same fleet for an app without a pool. */
  readonly noPool?: boolean;
}

export const POOLS_DEFAULTS: PoolsOptions = {
  workers: 200,
  workerProcs: 4,
  tasks: 5000,
  rate: 40,
  taskMs: 500,
  coldStartMs: 2000,
  minNodes: 2,
  maxNodes: 150,
  targetQueueDelayMs: 2000,
  idleTimeoutMs: 5000,
};

const POLL_MS = 200;

export async function runPools(o: PoolsOptions): Promise<Result> {
  const scope = new Scope();
  try {
    const net = await startBenchNetwork(scope);
    const client = await benchClient(scope, net);
    const t0 = performance.now();
    const procs: Promise<WorkerProcess>[] = [];
    const per = Math.ceil(o.workers / o.workerProcs);
    for (let i = 0, left = o.workers; left > 0; i++, left -= per) {
      procs.push(startWorkerProcess(scope, net, Math.min(per, left), "NVIDIA GeForce RTX 3090:24GiB", `fleet${i}`, 3600));
    }
    const fleet = await Promise.all(procs);
    const joinMs = performance.now() - t0;
    const { app } = await client.apps.deploy({
      name: "burst",
      runtime: { builtin: { name: "sleep" } },
      gpu: { count: 1 },
      env: { COLD_START_MS: String(o.coldStartMs) },
      pool: o.noPool ? undefined : {
        minNodes: o.minNodes,
        maxNodes: o.maxNodes,
        idleTimeoutMs: o.idleTimeoutMs,
        targetQueueDelayMs: o.targetQueueDelayMs,
        scaleDownStep: Math.max(1, Math.ceil(o.maxNodes / 10)),
      },
    });
    if (!o.noPool) await waitFor("the minimum warm", async () => ((await client.pools.status("burst")).warmNodes >= o.minNodes ? true : undefined), 60_000, 100);

    // Watch the pool while the burst runs.
    let sampling = true;
    let peakMembers = 0;
    let warmAt: number | undefined;
    let lastSeenAboveMin = 0;
    const sampler = (async () => {
      while (sampling) {
        // A busy control plane may refuse a status call (UNAVAILABLE); the next poll tries again.
        const s = await client.pools.status("burst").catch(() => undefined);
        if (!s) {
          await sleep(POLL_MS);
          continue;
        }
        const members = s.members.length;
        peakMembers = Math.max(peakMembers, members);
        if (members > o.minNodes) lastSeenAboveMin = Date.now();
        // Warm: the pool grew, and everything it wants is ready.
        if (warmAt === undefined && members > o.minNodes && s.coldStartingNodes === 0 && s.warmNodes >= s.desiredNodes) warmAt = Date.now();
        await sleep(POLL_MS);
      }
    })();

    const cpBefore = await net.cpStats();
    const burstStart = Date.now();
    const seconds = o.taskMs / 1000;
    const ids: string[] = [];
    const submitErrors: string[] = [];
    const inFlight = new Set<Promise<void>>();
    for (let i = 0; i < o.tasks; i++) {
      // Steady arrivals: task i is due at i / rate seconds into the burst.
      const due = burstStart + (i * 1000) / o.rate;
      const wait = due - Date.now();
      if (wait > 0) await sleep(wait);
      const p = client.tasks
        .submit({ app: "burst", input: { seconds, steps: 1, i } })
        .then(({ task }) => void ids.push(task.id))
        .catch((err: Error) => void submitErrors.push(err.message))
        .finally(() => inFlight.delete(p));
      inFlight.add(p);
      if (inFlight.size >= 256) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
    const submittedMs = Date.now() - burstStart;
    await waitFor(
      "every task to end",
      async () => {
        const r = await net.sql.query(`SELECT count(*)::int AS n FROM tasks WHERE app_id = $1 AND state IN ('SUCCEEDED','FAILED','CANCELLED','TIMED_OUT','EXPIRED')`, [app.id]);
        return r.rows[0].n >= ids.length ? true : undefined;
      },
      600_000,
      250,
    );
    const lastEnd = Number((await net.sql.query(`SELECT (extract(epoch FROM max(ended_at)) * 1000)::float8 AS t FROM tasks WHERE app_id = $1`, [app.id])).rows[0].t);
    // Back to the minimum: idle timeout, then released a step per round.
    if (!o.noPool) await waitFor("the pool back at its minimum", async () => ((await client.pools.status("burst").catch(() => undefined))?.members.length ?? Infinity) <= o.minNodes ? true : undefined, 300_000, 100);
    const backAtMin = Date.now();
    sampling = false;
    await sampler;
    const cpAfter = await net.cpStats();

    const tasks = await net.sql.query<{ created: number; queue_ms: number; state: string; start_ms: number; run_ms: number }>(
      `SELECT (extract(epoch FROM created_at) * 1000)::float8 AS created, (extract(epoch FROM assigned_at - created_at) * 1000)::float8 AS queue_ms,
         state, (extract(epoch FROM started_at - assigned_at) * 1000)::float8 AS start_ms, (extract(epoch FROM ended_at - started_at) * 1000)::float8 AS run_ms
       FROM tasks WHERE app_id = $1`,
      [app.id],
    );
    const events = await net.sql.query<{ kind: string; at: number; to_nodes: number; n: number }>(
      `SELECT kind, (extract(epoch FROM created_at) * 1000)::float8 AS at, to_nodes, jsonb_array_length(node_ids) AS n FROM scaling_events WHERE app_id = $1 ORDER BY seq`,
      [app.id],
    );
    const firstUp = events.rows.find((e) => e.kind === "scale_up" && e.at >= burstStart);
    const peakByEvents = Math.max(o.minNodes, ...events.rows.map((e) => e.to_nodes));
    const coldStarts = events.rows.filter((e) => e.kind === "warm" && e.at >= burstStart).length;
    // Most distinct nodes running the app's tasks at one instant (the hard cap), from each attempt's span.
    const spans = await net.sql.query<{ node_id: string; s: number; e: number }>(
      `SELECT node_id, (extract(epoch FROM created_at) * 1000)::float8 AS s, (extract(epoch FROM coalesce(ended_at, now())) * 1000)::float8 AS e FROM attempts WHERE app_id = $1`,
      [app.id],
    );
    const maxDistinct = maxConcurrentNodes(spans.rows);

    const all = tasks.rows.filter((t) => t.queue_ms !== null);
    const warm = warmAt === undefined ? [] : all.filter((t) => t.created >= warmAt!);
    const qAll = distribution(all.map((t) => t.queue_ms));
    const qWarm = distribution(warm.map((t) => t.queue_ms));
    const succeeded = tasks.rows.filter((t) => t.state === "SUCCEEDED").length;
    return {
      part: "pools",
      variant: o.noPool ? "baseline: same burst, app without a pool" : "pooled app",
      workers: fleet.reduce((n, w) => n + w.nodeIds.length, 0),
      worker_procs: o.workerProcs,
      fleet_join_ms: r2(joinMs),
      tasks: o.tasks,
      rate_per_s: o.rate,
      task_ms: o.taskMs,
      cold_start_ms: o.coldStartMs,
      policy: `min ${o.minNodes}, max ${o.maxNodes}, target queue delay ${o.targetQueueDelayMs} ms, idle timeout ${o.idleTimeoutMs} ms`,
      submitted_in_ms: submittedMs,
      submit_errors: submitErrors.length,
      succeeded,
      time_to_first_scale_up_ms: firstUp ? r2(firstUp.at - burstStart) : null,
      peak_pool_nodes: Math.max(peakMembers, peakByEvents),
      max_distinct_nodes_running_at_once: maxDistinct,
      cold_starts_during_burst: coldStarts,
      scaling_events: Object.entries(
        events.rows.filter((e) => e.at >= burstStart).reduce<Record<string, number>>((acc, e) => ((acc[e.kind] = (acc[e.kind] ?? 0) + 1), acc), {}),
      )
        .map(([k, n]) => `${k} ${n}`)
        .join(", "),
      pool_warm_after_ms: warmAt === undefined ? null : warmAt - burstStart,
      queue_delay_all_p50_ms: r2(qAll.p50),
      queue_delay_all_p99_ms: r2(qAll.p99),
      queue_delay_warm_tasks: warm.length,
      queue_delay_warm_p50_ms: r2(qWarm.p50),
      queue_delay_warm_p99_ms: r2(qWarm.p99),
      queue_delay_warm_max_ms: r2(qWarm.max),
      assigned_to_started_p50_ms: r2(distribution(all.map((t) => t.start_ms)).p50),
      assigned_to_started_p99_ms: r2(distribution(all.map((t) => t.start_ms)).p99),
      started_to_ended_p50_ms: r2(distribution(all.map((t) => t.run_ms)).p50),
      warm_p99_within_target: warm.length > 0 && qWarm.p99 <= o.targetQueueDelayMs,
      last_task_end_to_min_ms: r2(backAtMin - lastEnd),
      last_seen_above_min_ms_after_end: lastSeenAboveMin ? r2(lastSeenAboveMin - lastEnd) : null,
      failed_or_other: tasks.rows.length - succeeded,
      cp_cpu_share: r2((cpAfter.cpuS - cpBefore.cpuS) / ((cpAfter.atMs - cpBefore.atMs) / 1000)),
      cp_event_loop_delay_p99_ms: r2(cpAfter.eventLoopDelayMs.p99),
      cp_event_loop_delay_max_ms: r2(cpAfter.eventLoopDelayMs.max),
      cp_warnings: cpAfter.warnings,
      cp_warning_kinds: [...new Set(cpAfter.firstWarnings.map((w) => { try { const j = JSON.parse(w) as { msg?: string; reason?: string; err?: unknown }; return `${j.msg}: ${j.reason ?? JSON.stringify(j.err ?? "").slice(0, 200)}`; } catch { return w.slice(0, 200); } }))].join(" | "),
      state_check: succeeded === tasks.rows.length ? "all succeeded" : `succeeded ${succeeded}/${tasks.rows.length}`,
    };
  } finally {
    await scope.close();
  }
}

/** Most distinct nodes with an attempt open at the same instant (sweep over start/end points). */
function maxConcurrentNodes(spans: ReadonlyArray<{ node_id: string; s: number; e: number }>): number {
  const points = spans.flatMap((x) => [
    { t: x.s, node: x.node_id, d: 1 },
    { t: x.e, node: x.node_id, d: -1 },
  ]);
  points.sort((a, b) => a.t - b.t || a.d - b.d);
  const open = new Map<string, number>();
  let best = 0;
  for (const p of points) {
    const n = (open.get(p.node) ?? 0) + p.d;
    if (n <= 0) open.delete(p.node);
    else open.set(p.node, n);
    best = Math.max(best, open.size);
  }
  return best;
}
