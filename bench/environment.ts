// What the numbers were measured on: printed first, so every result comes with it.
import { execFile } from "node:child_process";
import { cpus, loadavg, totalmem } from "node:os";
import { cores } from "./cpu.js";
import pg from "pg";
import { PG_ADMIN_URL } from "./network.js";
import type { Result } from "./stats.js";

async function postgresSettings(): Promise<string> {
  const c = new pg.Client({ connectionString: PG_ADMIN_URL });
  try {
    await c.connect();
    const r = await c.query<{ v: string; f: string; s: string }>(`SELECT current_setting('server_version') AS v, current_setting('fsync') AS f, current_setting('synchronous_commit') AS s`);
    const row = r.rows[0]!;
    return `${row.v} (fsync=${row.f}, synchronous_commit=${row.s})`;
  } catch (err) {
    return `unreachable: ${(err as Error).message}`;
  } finally {
    await c.end().catch(() => {});
  }
}

function version(command: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve) => {
    execFile(command, [...args], { timeout: 5_000 }, (err, stdout, stderr) => resolve(err ? "unknown" : (stdout || stderr).trim().split("\n")[0]!));
  });
}

export async function environment(): Promise<Result> {
  return {
    part: "environment",
    cores: cores(),
    cpu_model: cpus()[0]?.model ?? "unknown",
    memory_gib: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    postgres_server: await postgresSettings(),
    nats_server: await version("nats-server", ["--version"]),
    load_average_1m: Math.round(loadavg()[0]! * 100) / 100,
  };
}
