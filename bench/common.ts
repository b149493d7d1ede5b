// Pieces several parts share: the echo app, the SDK client, worker processes.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createNgpuClient, type NgpuClient } from "../sdk/index.js";
import { type Child, forkChild } from "./children.js";
import { pidCpuTicks, ticksToSeconds } from "./cpu.js";
import { type FromWorkers, isType, type ToWorkers } from "./ipc.js";
import type { BenchNetwork } from "./network.js";
import type { Scope } from "./scope.js";

export const TERMINAL_SQL = "('SUCCEEDED','FAILED','CANCELLED','TIMED_OUT','EXPIRED')";

export async function benchClient(scope: Scope, net: BenchNetwork): Promise<NgpuClient> {
  const client = createNgpuClient({ baseUrl: net.url, apiKey: net.apiKey });
  scope.defer("sdk client", () => client.close());
  return client;
}

/** Deploys the builtin "echo" app (one GPU per task). */
export async function deployEcho(client: NgpuClient, name = "echo"): Promise<void> {
  await client.apps.deploy({ name, runtime: { builtin: { name: "echo" } }, gpu: { count: 1 } });
}

export interface WorkerProcess {
  readonly child: Child<ToWorkers, FromWorkers>;
  readonly nodeIds: string[];
  readonly startMs: number;
}

/** Starts `count` workers with `gpuSpec` in one child process and waits until they joined. */
export async function startWorkerProcess(scope: Scope, net: BenchNetwork, count: number, gpuSpec: string, name: string, maxSeconds: number): Promise<WorkerProcess> {
  // The workers' data dirs live under one folder the bench removes itself: a child that is
  // killed (rather than stopped) cannot clean up after its workers.
  const dataRoot = mkdtempSync(join(tmpdir(), "ngpu-bench-workers-"));
  scope.defer(`remove ${dataRoot}`, () => rmSync(dataRoot, { recursive: true, force: true }));
  const child = forkChild<ToWorkers, FromWorkers>(scope, "worker-process.ts", [net.url, net.enrollmentToken, String(count), gpuSpec, name, String(maxSeconds)], {
    NGPU_BENCH_WORKER_DATA_ROOT: dataRoot,
  });
  const m = await child.next((x): x is Extract<FromWorkers, { type: "ready" | "failed" }> => x.type === "ready" || x.type === "failed", 120_000, "workers ready");
  if (m.type === "failed") throw new Error(`worker process failed: ${m.error}`);
  return { child, nodeIds: m.nodeIds, startMs: m.startMs };
}

/** Asks a worker process to stop; returns the CPU seconds it used (NaN if it did not answer). */
export async function stopWorkerProcess(w: WorkerProcess): Promise<number> {
  w.child.send({ type: "stop" });
  let cpuS = Number.NaN;
  try {
    cpuS = (await w.child.next(isType<FromWorkers, "stopped">("stopped"), 15_000, "workers stopped")).cpuS;
  } catch {
    // Killed below.
  }
  await w.child.stopped(5_000);
  return cpuS;
}

/** Postgres's own counters for the bench database (commits, rows written). */
export async function dbCounters(net: BenchNetwork): Promise<{ commits: number; updated: number; inserted: number }> {
  const r = await net.sql.query<{ commits: string; updated: string; inserted: string }>(
    `SELECT xact_commit AS commits, tup_updated AS updated, tup_inserted AS inserted FROM pg_stat_database WHERE datname = current_database()`,
  );
  const row = r.rows[0]!;
  return { commits: Number(row.commits), updated: Number(row.updated), inserted: Number(row.inserted) };
}

/** CPU ticks of the Postgres backends serving the bench database now (pid → ticks). */
export async function dbBackendTicks(net: BenchNetwork): Promise<Map<number, number>> {
  const r = await net.sql.query<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`);
  return new Map(r.rows.map((row) => [row.pid, pidCpuTicks(row.pid)]));
}

/**
 * CPU seconds the bench database's own backends used between two dbBackendTicks
 * readings (backends that started in between count from zero). Unlike the
 * all-postgres figure, other users of the server are not in it; autovacuum,
 * the WAL writer and the checkpointer are not either.
 */
export function dbBackendCpuS(before: ReadonlyMap<number, number>, after: ReadonlyMap<number, number>): number {
  let ticks = 0;
  for (const [pid, t] of after) if (Number.isFinite(t)) ticks += t - (before.get(pid) ?? 0);
  return ticksToSeconds(ticks);
}
