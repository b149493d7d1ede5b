// A control plane for one benchmark part, in a child process of its own, on a
// fresh Postgres database and NATS subject prefix (the approach of
// test/helpers/network.ts); the database is dropped afterwards.
import { randomBytes } from "node:crypto";
import pg from "pg";
import { type Child, forkChild } from "./children.js";
import { type CpStats, type FromCp, isType, type ToCp } from "./ipc.js";
import type { Scope } from "./scope.js";

export const PG_ADMIN_URL = process.env.NGPU_BENCH_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
export const NATS_URL = process.env.NGPU_BENCH_NATS_URL ?? "nats://127.0.0.1:4222";

export interface BenchNetwork {
  readonly url: string;
  readonly databaseName: string;
  readonly prefix: string;
  readonly apiKey: string;
  readonly enrollmentToken: string;
  /** The control-plane process. */
  readonly cp: Child<ToCp, FromCp>;
  /** A small pg pool of the bench's own on the bench database, for measuring queries. */
  readonly sql: pg.Pool;
  /** Asks the control-plane process for its counters (resets its event-loop delay histogram). */
  cpStats(): Promise<CpStats>;
}

export interface BenchNetworkOptions {
  /** The control plane's Postgres pool size (production default 10). */
  readonly poolSize?: number;
  /** The control-plane process exits by itself after this long. */
  readonly maxSeconds?: number;
}

function assertLoopback(url: string): void {
  const host = new URL(url).hostname;
  if (!["127.0.0.1", "localhost", "::1", "[::1]"].includes(host)) throw new Error(`bench: only loopback servers are allowed, got ${url}`);
}

/** A fresh database on the bench's Postgres, dropped (forcibly) when `scope` ends; returns its URL. */
export async function createBenchDatabase(scope: Scope): Promise<string> {
  assertLoopback(PG_ADMIN_URL);
  const name = `ngpu_bench_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  scope.defer(`drop database ${name}`, async () => {
    const c = new pg.Client({ connectionString: PG_ADMIN_URL });
    await c.connect();
    try {
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    } finally {
      await c.end();
    }
  });
  const url = new URL(PG_ADMIN_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

/** Creates the database and starts the control-plane process; `scope` stops it and drops the database. */
export async function startBenchNetwork(scope: Scope, options: BenchNetworkOptions = {}): Promise<BenchNetwork> {
  assertLoopback(PG_ADMIN_URL);
  assertLoopback(NATS_URL);
  const url = new URL(await createBenchDatabase(scope));
  const name = url.pathname.slice(1);
  if (process.env.NGPU_BENCH_PG_LOG_STATEMENTS === "1") {
    // Diagnostics: the server logs every statement on this database with its duration.
    const c = new pg.Client({ connectionString: PG_ADMIN_URL });
    await c.connect();
    await c.query(`ALTER DATABASE ${name} SET log_min_duration_statement = 0`).finally(() => c.end());
  }
  const prefix = `ngpu_bench_${randomBytes(6).toString("hex")}`;

  const cp = forkChild<ToCp, FromCp>(scope, "cp-process.ts", [url.toString(), NATS_URL, prefix, String(options.poolSize ?? 10), String(options.maxSeconds ?? 3600)]);
  scope.defer("control-plane process stop", async () => {
    cp.send({ type: "stop" });
    await cp.stopped(15_000);
  });
  const ready = await cp.next((m): m is Extract<FromCp, { type: "ready" | "failed" }> => m.type === "ready" || m.type === "failed", 60_000, "control plane ready");
  if (ready.type === "failed") throw new Error(`control plane failed to start: ${ready.error}`);

  const sql = new pg.Pool({ connectionString: url.toString(), max: 2 });
  sql.on("error", () => {});
  scope.defer("bench pg pool", () => sql.end());
  return {
    url: ready.url,
    databaseName: name,
    prefix,
    apiKey: ready.apiKey,
    enrollmentToken: ready.enrollmentToken,
    cp,
    sql,
    async cpStats() {
      cp.send({ type: "stats" });
      return (await cp.next(isType<FromCp, "stats">("stats"), 30_000, "control-plane stats")).stats;
    },
  };
}
