// Failover time: a worker running a task is SIGKILLed (its process dies, as a
// provider's machine would); the clock runs from the kill until the task runs
// again on another node. Default control-plane settings (reconnect grace 1 s,
// lost after 3 s of silence). One worker per process, so one kill takes one node.
import type { Task } from "../sdk/index.js";
import { TaskState } from "../sdk/index.js";
import { benchClient, startWorkerProcess, type WorkerProcess } from "./common.js";
import { startBenchNetwork } from "./network.js";
import { Scope, sleep } from "./scope.js";
import { distribution, r2, type Result } from "./stats.js";

export interface FailoverOptions {
  readonly trials: number;
  /** Worker processes kept joined (one is killed per trial and replaced). */
  readonly workers: number;
}

export const FAILOVER_DEFAULTS: FailoverOptions = { trials: 20, workers: 3 };

const POLL_MS = 10;

export async function runFailover(options: FailoverOptions): Promise<Result> {
  const scope = new Scope();
  try {
    const net = await startBenchNetwork(scope);
    const client = await benchClient(scope, net);
    await client.apps.deploy({ name: "sleeper", runtime: { builtin: { name: "sleep" } }, gpu: { count: 1 } });
    let n = 0;
    const start = () => startWorkerProcess(scope, net, 1, "NVIDIA GeForce RTX 3090:24GiB", `failover-${++n}`, 3600);
    const pool: WorkerProcess[] = [];
    for (let i = 0; i < options.workers; i++) pool.push(await start());

    const until = async (id: string, ok: (t: Task) => boolean, timeoutMs: number): Promise<Task> => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const t = await client.tasks.get(id);
        if (ok(t)) return t;
        if (Date.now() > deadline) throw new Error(`task ${id} did not get there in ${timeoutMs} ms (state ${TaskState[t.state]})`);
        await sleep(POLL_MS);
      }
    };

    const toRequeued: number[] = [];
    const toRunning: number[] = [];
    for (let trial = 0; trial < options.trials; trial++) {
      const { task } = await client.tasks.submit({ app: "sleeper", input: { seconds: 600 } });
      const running = await until(task.id, (t) => t.state === TaskState.RUNNING, 30_000);
      const victim = pool.find((w) => w.nodeIds.includes(running.nodeId));
      if (!victim) throw new Error(`no worker process holds node ${running.nodeId}`);
      const t0 = performance.now();
      victim.child.process.kill("SIGKILL");
      let requeuedAt = 0;
      await until(
        task.id,
        (t) => {
          if (!requeuedAt && t.state !== TaskState.RUNNING) requeuedAt = performance.now();
          return t.state === TaskState.RUNNING && t.nodeId !== running.nodeId;
        },
        30_000,
      );
      toRunning.push(performance.now() - t0);
      toRequeued.push((requeuedAt || performance.now()) - t0);
      await client.tasks.cancel(task.id);
      pool.splice(pool.indexOf(victim), 1);
      pool.push(await start());
      // Let the cancelled attempt's GPU free up before the next trial.
      await sleep(200);
    }
    const run = distribution(toRunning);
    const detect = distribution(toRequeued);
    return {
      part: "failover",
      trials: options.trials,
      workers: options.workers,
      settings: "defaults: reconnect grace 1000 ms, lost after 3000 ms, monitor every 250 ms",
      kill_to_running_elsewhere_p50_ms: r2(run.p50),
      kill_to_running_elsewhere_p99_ms: r2(run.p99),
      kill_to_running_elsewhere_max_ms: r2(run.max),
      kill_to_requeued_p50_ms: r2(detect.p50),
      poll_interval_ms: POLL_MS,
    };
  } finally {
    await scope.close();
  }
}
