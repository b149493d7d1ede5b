import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createWorkspace } from "../../control-plane/db/credentials.js";
import { type Db, openDatabase } from "../../control-plane/db/database.js";
import { finishAttemptsPlainly, requeueLostAttempts, timeOutAttempts } from "../../control-plane/db/tasks.js";
import { CLOCK_TOLERANCE_MS, onUnpricedGpuModel, recordUsage } from "../../control-plane/db/usage.js";
import { newId } from "../../control-plane/ids.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { RTX_3090, recordInBatches, seedApp, seedEndedAttempts, seedNode } from "../helpers/usage-fixtures.js";

/** Usage records and rollups, written through the real write path with chosen timestamps. */
describe("metering: usage records", () => {
  let database: TestDatabase;
  let db: Db;

  beforeAll(async () => {
    database = await createTestDatabase();
    db = await openDatabase({ kind: "postgres", url: database.url, poolSize: 4 });
  });
  afterAll(async () => {
    await db?.destroy();
    await database?.drop();
  });

  async function sums(workspaceId: string) {
    const records = await db
      .selectFrom("usage_records")
      .select([sql<string>`count(*)::text`.as("n"), sql<string>`COALESCE(sum(gpu_ms), 0)::text`.as("gpu_ms"), sql<string>`COALESCE(sum(cost_nano_usd), 0)::text`.as("cost")])
      .where("workspace_id", "=", workspaceId)
      .executeTakeFirstOrThrow();
    const rollups = await db
      .selectFrom("usage_rollups")
      .select([sql<string>`COALESCE(sum(attempts), 0)::text`.as("n"), sql<string>`COALESCE(sum(gpu_ms), 0)::text`.as("gpu_ms"), sql<string>`COALESCE(sum(cost_nano_usd), 0)::text`.as("cost")])
      .where("workspace_id", "=", workspaceId)
      .executeTakeFirstOrThrow();
    const byApp = await db
      .selectFrom("usage_rollups_by_app")
      .select([sql<string>`COALESCE(sum(attempts), 0)::text`.as("n"), sql<string>`COALESCE(sum(gpu_ms), 0)::text`.as("gpu_ms"), sql<string>`COALESCE(sum(cost_nano_usd), 0)::text`.as("cost")])
      .where("workspace_id", "=", workspaceId)
      .executeTakeFirstOrThrow();
    expect(byApp).toEqual(rollups);
    return { records, rollups };
  }

  it("bills 3,000 ten-second tasks on an RTX 3090 exactly 10.98 USD", async () => {
    const ws = await createWorkspace(db, "images");
    const app = await seedApp(db, ws.id);
    const node = await seedNode(db);
    const ids = await seedEndedAttempts(db, {
      workspaceId: ws.id,
      appId: app,
      nodeId: node,
      count: 3000,
      firstStart: new Date("2026-03-01T00:00:00Z"),
      spacingMs: 14 * 60_000,
      executionMs: 10_000,
    });
    expect(await recordInBatches(db, ids)).toBe(3000);
    const { records, rollups } = await sums(ws.id);
    expect(records).toEqual({ n: "3000", gpu_ms: "30000000", cost: "10980000000" });
    expect(rollups).toEqual(records);
    const one = await db.selectFrom("usage_records").selectAll().where("attempt_id", "=", ids[0]!).executeTakeFirstOrThrow();
    expect(one).toMatchObject({ gpu_model: RTX_3090, gpu_count: 1, outcome: "SUCCEEDED", execution_ms: 10_000, price_nano_usd_per_gpu_second: 366_000, cost_nano_usd: 3_660_000 });
    expect(one.ended_at_ms - one.started_at_ms!).toBe(10_000);
    // The default revenue share: 80 % to the provider.
    expect(one.provider_nano_usd).toBe(2_928_000);
  });

  it("bills each task at the price in force when it started, across a mid-month price change", async () => {
    const model = "NVIDIA Test Priced GPU";
    await db
      .insertInto("gpu_prices")
      .values([
        { gpu_model: model, effective_from: new Date("2026-04-01T00:00:00Z"), nano_usd_per_gpu_second: 100_000 },
        { gpu_model: model, effective_from: new Date("2026-04-15T12:00:00Z"), nano_usd_per_gpu_second: 250_000 },
      ])
      .execute();
    const ws = await createWorkspace(db, "price-change");
    const app = await seedApp(db, ws.id);
    const node = await seedNode(db, { model });
    // One task a day through April, each 2 s; the 15th starts at 00:00, before the change at 12:00.
    const ids = await seedEndedAttempts(db, { workspaceId: ws.id, appId: app, nodeId: node, count: 30, firstStart: new Date("2026-04-01T00:00:00Z"), spacingMs: 86_400_000, executionMs: 2_000 });
    await recordInBatches(db, ids);
    const rows = await db.selectFrom("usage_records").select(["price_nano_usd_per_gpu_second as price", "cost_nano_usd as cost"]).where("workspace_id", "=", ws.id).orderBy("started_at_ms").execute();
    expect(rows.slice(0, 15).every((r) => r.price === 100_000 && r.cost === 200_000)).toBe(true);
    expect(rows.slice(15).every((r) => r.price === 250_000 && r.cost === 500_000)).toBe(true);
    expect((await sums(ws.id)).records.cost).toBe(String(15 * 200_000 + 15 * 500_000));
  });

  it("bills what the control plane saw when the worker's time disagrees beyond the tolerance, and keeps the disagreement", async () => {
    const ws = await createWorkspace(db, "clocks");
    const app = await seedApp(db, ws.id);
    const node = await seedNode(db, { gpuCount: 2 });
    const base = { workspaceId: ws.id, appId: app, nodeId: node, count: 1, firstStart: new Date("2026-05-01T00:00:00Z"), spacingMs: 0, executionMs: 10_000, gpuIndices: [0, 1] };
    const [close] = await seedEndedAttempts(db, { ...base, workerExtraMs: -(CLOCK_TOLERANCE_MS - 100) });
    const [longer] = await seedEndedAttempts(db, { ...base, workerExtraMs: CLOCK_TOLERANCE_MS - 1 });
    const [far] = await seedEndedAttempts(db, { ...base, workerExtraMs: 10_000 });
    const [none] = await seedEndedAttempts(db, { ...base, workerExtraMs: null });
    await recordUsage(db, [close!, longer!, far!, none!]);
    const byId = new Map((await db.selectFrom("usage_records").selectAll().where("workspace_id", "=", ws.id).execute()).map((r) => [r.attempt_id, r]));
    expect(byId.get(close!)).toMatchObject({ execution_ms: 10_000 - (CLOCK_TOLERANCE_MS - 100), gpu_ms: 2 * (10_000 - (CLOCK_TOLERANCE_MS - 100)), gpu_count: 2, disagreement_ms: -(CLOCK_TOLERANCE_MS - 100) });
    expect(byId.get(far!)).toMatchObject({ execution_ms: 10_000, gpu_ms: 20_000, worker_execution_ms: 20_000, control_plane_execution_ms: 10_000, disagreement_ms: 10_000 });
    expect(byId.get(none!)).toMatchObject({ execution_ms: 10_000, worker_execution_ms: null, disagreement_ms: null });
    // Within the tolerance but longer than the control plane saw: the worker's extra time is not billed.
    expect(byId.get(longer!)).toMatchObject({ execution_ms: 10_000, worker_execution_ms: 10_000 + CLOCK_TOLERANCE_MS - 1, disagreement_ms: CLOCK_TOLERANCE_MS - 1 });
    // Every record's own start and end hold the time it bills.
    for (const r of byId.values()) expect(r.execution_ms).toBeLessThanOrEqual(r.ended_at_ms - r.started_at_ms!);
  });

  it("bills a GPU model with no price 0 and reports the model once; a price of 0 set on purpose is not reported", async () => {
    const reported: string[] = [];
    const stop = onUnpricedGpuModel((model) => reported.push(model));
    try {
      const ws = await createWorkspace(db, "unpriced");
      const app = await seedApp(db, ws.id);
      const free = "NVIDIA Test Free GPU";
      await db.insertInto("gpu_prices").values({ gpu_model: free, effective_from: new Date("2026-01-01T00:00:00Z"), nano_usd_per_gpu_second: 0 }).execute();
      const base = { workspaceId: ws.id, appId: app, count: 2, firstStart: new Date("2026-06-01T00:00:00Z"), spacingMs: 60_000, executionMs: 1_000 };
      await recordInBatches(db, await seedEndedAttempts(db, { ...base, nodeId: await seedNode(db, { model: "NVIDIA Test Unpriced GPU" }) }));
      await recordInBatches(db, await seedEndedAttempts(db, { ...base, nodeId: await seedNode(db, { model: "NVIDIA Test Unpriced GPU" }) }));
      await recordInBatches(db, await seedEndedAttempts(db, { ...base, nodeId: await seedNode(db, { model: free }) }));
      expect(reported).toEqual(["NVIDIA Test Unpriced GPU"]);
      expect((await sums(ws.id)).records.cost).toBe("0");
    } finally {
      stop();
    }
  });

  /** A task running on a node now, as the scheduler and a RUNNING report leave it. */
  async function runningAttempt(workspaceId: string, appId: string, nodeId: string, options: { ranMs: number; timeoutMs?: number }) {
    const taskId = newId("tsk");
    const attemptId = newId("att");
    const startedAt = sql`now() - make_interval(secs => ${options.ranMs / 1000})`;
    await sql`INSERT INTO tasks (id, workspace_id, app_id, app_version, state, input, timeout_ms, attempt_count, current_attempt_id, node_id, gpu_indices, assigned_at, started_at)
      VALUES (${taskId}, ${workspaceId}, ${appId}, 1, 'RUNNING', '{}', ${options.timeoutMs ?? 600_000}, 1, ${attemptId}, ${nodeId}, '[0]', ${startedAt}, ${startedAt})`.execute(db);
    await sql`INSERT INTO attempts (id, task_id, workspace_id, app_id, node_id, fencing_token, gpu_indices, state, started_at)
      VALUES (${attemptId}, ${taskId}, ${workspaceId}, ${appId}, ${nodeId}, nextval('attempt_fencing_tokens'), '[0]', 'RUNNING', ${startedAt})`.execute(db);
    const token = await db.selectFrom("attempts").select("fencing_token").where("id", "=", attemptId).executeTakeFirstOrThrow();
    return { ref: { taskId, attemptId, nodeId, fencingToken: token.fencing_token } };
  }

  it("counts a replayed finish report once", async () => {
    const ws = await createWorkspace(db, "replay");
    const app = await seedApp(db, ws.id);
    const node = await seedNode(db);
    const { ref } = await runningAttempt(ws.id, app, node, { ranMs: 1_000 });
    const now = Date.now();
    const finish = { ref, outcome: { outcome: "SUCCEEDED" as const, output: { ok: true }, error: "", retryable: false, workerStartedAtMs: now - 1_000, workerEndedAtMs: now } };
    const [first] = await finishAttemptsPlainly(db, [finish]);
    const [again] = await finishAttemptsPlainly(db, [finish]);
    expect(first?.attemptOk).toBe(true);
    expect(again?.attemptOk).toBe(false);
    // Recording the same attempt again directly writes nothing either.
    expect(await recordUsage(db, [ref.attemptId])).toEqual([]);
    const { records, rollups } = await sums(ws.id);
    expect(records.n).toBe("1");
    expect(rollups).toEqual(records);
    const record = await db.selectFrom("usage_records").selectAll().where("attempt_id", "=", ref.attemptId).executeTakeFirstOrThrow();
    expect(record.execution_ms).toBe(1_000);
    expect(record.cost_nano_usd).toBe(366_000);
  });

  it("charges nothing for an attempt lost with its node, to the caller or the provider", async () => {
    const ws = await createWorkspace(db, "lost");
    const app = await seedApp(db, ws.id);
    const node = await seedNode(db);
    const { ref } = await runningAttempt(ws.id, app, node, { ranMs: 5_000 });
    await requeueLostAttempts(db, [ref.attemptId], "test: node lost");
    const record = await db.selectFrom("usage_records").selectAll().where("attempt_id", "=", ref.attemptId).executeTakeFirstOrThrow();
    expect(record).toMatchObject({ outcome: "LOST", execution_ms: 0, gpu_ms: 0, cost_nano_usd: 0, provider_nano_usd: 0 });
  });

  it("bills a timed-out task up to its timeout and not a millisecond more", async () => {
    const ws = await createWorkspace(db, "timeout");
    const app = await seedApp(db, ws.id);
    const node = await seedNode(db);
    const { ref } = await runningAttempt(ws.id, app, node, { ranMs: 7_000, timeoutMs: 2_000 });
    const ended = await timeOutAttempts(db);
    expect(ended.map((e) => e.attemptId)).toContain(ref.attemptId);
    const record = await db.selectFrom("usage_records").selectAll().where("attempt_id", "=", ref.attemptId).executeTakeFirstOrThrow();
    expect(record).toMatchObject({ outcome: "TIMED_OUT", execution_ms: 2_000, gpu_ms: 2_000, cost_nano_usd: 2_000 * 366 });
  });

  it("counts submissions with the insert, and rollups match records", async () => {
    const ws = await createWorkspace(db, "submit");
    const app = await seedApp(db, ws.id);
    const { insertTask } = await import("../../control-plane/db/tasks.js");
    for (let i = 0; i < 5; i++) {
      await insertTask(db, { workspaceId: ws.id, appId: app, appVersion: 1, input: { i }, priority: 0, labels: {}, idempotencyKey: "same-" + (i % 3), timeoutMs: 1000, maxAttempts: 1, queueTtlMs: 0 }).catch(() => undefined);
    }
    const row = await db.selectFrom("task_submissions").select(sql<string>`sum(submitted)::text`.as("n")).where("workspace_id", "=", ws.id).executeTakeFirstOrThrow();
    // Keys same-0 and same-1 were reused (one with other input, refused): 3 tasks were created.
    expect(row.n).toBe("3");
  });
});
