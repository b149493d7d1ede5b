// Webhooks: what the outbox trigger costs the hot path (batched task updates, as the gateway
// writes them), and how fast one control plane's deliverer drains the outbox to a local receiver.
import http from "node:http";
import type { AddressInfo } from "node:net";
import pg from "pg";
import { createWorkspace } from "../control-plane/db/credentials.js";
import { deployApp } from "../control-plane/db/apps.js";
import { openDatabase } from "../control-plane/db/database.js";
import { createLogger } from "../control-plane/log.js";
import { startWebhookDeliverer } from "../control-plane/webhooks/deliverer.js";
import { PG_ADMIN_URL } from "./network.js";
import { median, r2, type Result } from "./stats.js";

export interface WebhooksOptions {
  /** Tasks updated per measured round. */
  readonly tasks: number;
  /** Tasks per UPDATE statement (the gateway batches its writes the same way). */
  readonly batch: number;
  /** Rounds per variant, interleaved; medians are reported. */
  readonly rounds: number;
  /** Deliveries drained in the delivery measurement. */
  readonly deliveries: number;
}

export const WEBHOOKS_DEFAULTS: WebhooksOptions = { tasks: 10_000, batch: 500, rounds: 5, deliveries: 5_000 };

const VARIANTS = ["trigger off", "trigger, no webhook", "trigger, one app webhook"] as const;

export async function runWebhooks(o: WebhooksOptions): Promise<Result[]> {
  const name = `ngpu_bench_webhooks_${process.pid}`;
  const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${name}`);
  await admin.query(`CREATE DATABASE ${name}`);
  const url = new URL(PG_ADMIN_URL);
  url.pathname = `/${name}`;
  const db = await openDatabase({ kind: "postgres", url: url.toString(), poolSize: 4 });
  const sql = new pg.Client({ connectionString: url.toString() });
  await sql.connect();
  try {
    const ws = await createWorkspace(db, "bench");
    const { app } = await deployApp(db, ws.id, {
      name: "echo", description: "", runtime: { kind: "builtin", name: "echo" }, gpuCount: 1, gpuMinMemoryBytes: 0, gpuModels: [], env: {},
      inputSchema: undefined, timeoutMs: 60_000, maxAttempts: 1, queueTtlMs: 0,
    });
    await sql.query(
      `INSERT INTO tasks (id, workspace_id, app_id, app_version, state, priority, input, error, progress, labels, timeout_ms, gpu_indices)
       SELECT 'tsk_' || g, $1, $2, 1, 'QUEUED', 0, '{}', '', 'null', '{}', 60000, '[]' FROM generate_series(1, $3) g`,
      [ws.id, app.id, o.tasks],
    );
    await sql.query(`DELETE FROM webhook_deliveries`); // the inserts' own "queued" events: none (no webhook yet)
    const ids = Array.from({ length: o.tasks }, (_, i) => `tsk_${i + 1}`);

    async function round(variant: (typeof VARIANTS)[number]): Promise<number> {
      // Back to QUEUED without firing anything (not measured).
      await sql.query(`SET session_replication_role = replica`);
      await sql.query(`UPDATE tasks SET state = 'QUEUED', progress = 'null'`);
      await sql.query(`SET session_replication_role = DEFAULT`);
      await sql.query(`UPDATE webhooks SET deleted_at = ${variant === "trigger, one app webhook" ? "NULL" : "now()"}`);
      await sql.query(`ALTER TABLE tasks ${variant === "trigger off" ? "DISABLE" : "ENABLE"} TRIGGER tasks_webhooks_on_update`);
      const started = performance.now();
      for (let i = 0; i < ids.length; i += o.batch) {
        await sql.query(`UPDATE tasks SET state = 'RUNNING', started_at = now() WHERE id = ANY($1)`, [ids.slice(i, i + o.batch)]);
      }
      return performance.now() - started;
    }

    await sql.query(`INSERT INTO webhooks (id, workspace_id, app_id, url, events, secret) VALUES ('whk_bench', $1, $2, 'http://127.0.0.1:9/', '["task.state_changed","task.progress","task.completed"]', 'whsec_bench')`, [ws.id, app.id]);
    const times = new Map<string, number[]>(VARIANTS.map((v) => [v, []]));
    await round("trigger off"); // warm-up
    for (let r = 0; r < o.rounds; r++) for (const v of VARIANTS) times.get(v)!.push(await round(v));
    await sql.query(`ALTER TABLE tasks ENABLE TRIGGER tasks_webhooks_on_update`);
    const results: Result[] = VARIANTS.map((v) => {
      const ms = median(times.get(v)!);
      return { part: "webhooks", variant: `task updates, ${v}`, tasks: o.tasks, batch: o.batch, rounds: o.rounds, ms_per_1000_tasks: r2((ms / o.tasks) * 1000), task_updates_per_s: Math.round(o.tasks / (ms / 1000)) };
    });

    // Drain: a receiver answering 200 at once; one deliverer, default batch (32 in flight).
    const enqueued = Number((await sql.query(`SELECT count(*) AS n FROM webhook_deliveries`)).rows[0].n);
    await sql.query(`DELETE FROM webhook_deliveries WHERE id NOT IN (SELECT id FROM webhook_deliveries ORDER BY seq LIMIT $1)`, [o.deliveries]);
    let received = 0;
    const receiver = http.createServer((req, res) => {
      req.resume();
      req.on("end", () => {
        received++;
        res.end("ok");
      });
    });
    await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
    await sql.query(`UPDATE webhooks SET url = $1`, [`http://127.0.0.1:${(receiver.address() as AddressInfo).port}/`]);
    const started = performance.now();
    const deliverer = startWebhookDeliverer({ db, logger: createLogger({ level: "silent" }), options: { pollIntervalMs: 100, allowPrivateTargets: true } });
    const deadline = Date.now() + 300_000;
    for (;;) {
      const left = Number((await sql.query(`SELECT count(*) AS n FROM webhook_deliveries WHERE state <> 'DELIVERED'`)).rows[0].n);
      if (left === 0) break;
      if (Date.now() > deadline) throw new Error(`${left} deliveries still not delivered after 300 s`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const seconds = (performance.now() - started) / 1000;
    await deliverer.shutdown();
    await new Promise<void>((r) => receiver.close(() => r()));
    results.push({ part: "webhooks", variant: "delivery drain, one control plane", enqueued_by_updates: enqueued, deliveries: o.deliveries, received, seconds: r2(seconds), deliveries_per_s: Math.round(o.deliveries / seconds) });
    return results;
  } finally {
    await sql.end();
    await db.destroy();
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
  }
}
