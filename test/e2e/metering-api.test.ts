import { Code, ConnectError } from "@connectrpc/connect";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { usageBucket } from "../../control-plane/db/usage.js";
import { newId } from "../../control-plane/ids.js";
import { TaskState } from "../../gen/ngpu/v1/task_pb.js";
import { UsageGranularity, UsageGroupBy, type GetUsageSummaryResponse, type UsageRecord, type UsageTotals } from "../../gen/ngpu/v1/usage_pb.js";
import { formatUsd, type NgpuClient } from "../../sdk/index.js";
import { startTestNetwork, type TestNetwork } from "../helpers/network.js";
import { builtin, client } from "../helpers/sdk.js";
import { recordInBatches, seedApp, seedEndedAttempts, seedNode } from "../helpers/usage-fixtures.js";
import { startTestWorker } from "../helpers/workers.js";
import type { Worker } from "../../worker/worker.js";

/** UsageService over a real control plane: summaries, records, export, estimates, prices, isolation. */
describe("metering: usage API", () => {
  let net: TestNetwork;
  let ngpu: NgpuClient;
  const clients: NgpuClient[] = [];
  const workers: Worker[] = [];
  const MARCH = new Date("2026-03-01T00:00:00Z");

  beforeAll(async () => {
    net = await startTestNetwork();
    ngpu = client(net.url, net.apiKey);
    const db = net.cp.db;
    await db.insertInto("gpu_prices").values({ gpu_model: "NVIDIA Test A100", effective_from: new Date("2026-01-01T00:00:00Z"), nano_usd_per_gpu_second: 1_234_567 }).execute();
    const app1 = await seedApp(db, net.workspaceId, { name: "alpha" });
    const app2 = await seedApp(db, net.workspaceId, { name: "beta" });
    const n1 = await seedNode(db);
    const n2 = await seedNode(db, { model: "NVIDIA Test A100", gpuCount: 2 });
    const seeds = [
      { appId: app1, nodeId: n1, count: 200, spacingMs: 37 * 60_000, executionMs: 10_000, outcome: "SUCCEEDED" },
      { appId: app2, nodeId: n2, count: 100, spacingMs: 61 * 60_000, executionMs: 3_001, outcome: "FAILED", gpuIndices: [0, 1] },
      { appId: app1, nodeId: n2, count: 50, spacingMs: 97 * 60_000, executionMs: 4_000, outcome: "LOST" },
      { appId: app2, nodeId: n1, count: 80, spacingMs: 53 * 60_000, executionMs: 2_000, outcome: "TIMED_OUT" },
      { appId: app1, nodeId: n1, count: 40, spacingMs: 29 * 60_000, executionMs: 777, outcome: "CANCELLED", workerExtraMs: 3 },
    ];
    for (const s of seeds) {
      await recordInBatches(db, await seedEndedAttempts(db, { workspaceId: net.workspaceId, firstStart: MARCH, ...s }));
    }
    // Each seeded task counted as submitted, as a submit does.
    await sql`INSERT INTO task_submissions (workspace_id, bucket, app_id, shard, submitted)
      SELECT workspace_id, ${usageBucket(sql`created_at`)}, app_id, 0, count(*) FROM tasks WHERE workspace_id = ${net.workspaceId} GROUP BY 1, 2, 3`.execute(db);
  });
  afterAll(async () => {
    await Promise.allSettled(workers.map((w) => w.shutdown(0)));
    await Promise.allSettled(clients.map((c) => c.close()));
    await ngpu?.close();
    await net?.close();
  });

  async function allRecords(api: NgpuClient, start: Date, end: Date): Promise<UsageRecord[]> {
    const out: UsageRecord[] = [];
    for await (const r of api.usage.recordsAll({ start, end, pageSize: 97 })) out.push(r);
    return out;
  }

  const key = (t: UsageTotals | undefined) => (t ? { attempts: t.attempts, gpuMs: t.gpuMs, cost: t.costNanoUsd, fee: t.feeNanoUsd } : undefined);
  const totalsOf = (records: readonly UsageRecord[]) => ({
    attempts: BigInt(records.length),
    gpuMs: records.reduce((a, r) => a + r.gpuMs, 0n),
    cost: records.reduce((a, r) => a + r.costNanoUsd, 0n),
    fee: records.reduce((a, r) => a + r.feeNanoUsd, 0n),
  });
  const recordKey: Record<number, (r: UsageRecord) => string> = {
    [UsageGroupBy.APP]: (r) => r.appId,
    [UsageGroupBy.GPU_MODEL]: (r) => r.gpuModel,
    [UsageGroupBy.NODE]: (r) => r.nodeId,
    [UsageGroupBy.OUTCOME]: (r) => r.outcome,
  };

  it("sums the same as the records behind them, for every granularity and grouping", async () => {
    const ranges: Array<[UsageGranularity, Date, Date, string]> = [
      [UsageGranularity.HOUR, MARCH, new Date("2026-03-31T00:00:00Z"), "UTC"],
      [UsageGranularity.DAY, new Date("2026-02-20T00:00:00Z"), new Date("2026-04-20T00:00:00Z"), "Asia/Kolkata"],
      [UsageGranularity.MONTH, new Date("2026-01-01T00:00:00Z"), new Date("2026-06-01T00:00:00Z"), "America/New_York"],
    ];
    const groups = [UsageGroupBy.UNSPECIFIED, UsageGroupBy.APP, UsageGroupBy.GPU_MODEL, UsageGroupBy.NODE, UsageGroupBy.OUTCOME];
    for (const [granularity, start, end, timeZone] of ranges) {
      let covered: { start: Date; end: Date; records: UsageRecord[] } | undefined;
      let ungroupedTotals: UsageTotals | undefined;
      for (const groupBy of groups) {
        const s = await ngpu.usage.summary({ start, end, timeZone, granularity, groupBy });
        // A range's totals (submissions included) never depend on the grouping.
        ungroupedTotals ??= s.totals;
        expect(ungroupedTotals!.submitted).toBeGreaterThan(0n);
        expect(s.totals, `${UsageGranularity[granularity]} ${UsageGroupBy[groupBy]}`).toEqual(ungroupedTotals);
        const rangeStart = timestampDate(s.startTime!);
        const rangeEnd = timestampDate(s.endTime!);
        covered ??= { start: rangeStart, end: rangeEnd, records: await allRecords(ngpu, rangeStart, rangeEnd) };
        expect(covered.records.length).toBeGreaterThan(0);
        // Totals = records in the covered range; every bucket = its groups; totals = the buckets.
        expect(key(s.totals)).toEqual(totalsOf(covered.records));
        const bucketSum = { attempts: 0n, gpuMs: 0n, cost: 0n, fee: 0n };
        for (const b of s.buckets) {
          const t = key(b.totals)!;
          for (const k of Object.keys(bucketSum) as Array<keyof typeof bucketSum>) bucketSum[k] += t[k];
          if (groupBy !== UsageGroupBy.UNSPECIFIED) {
            const g = { attempts: 0n, gpuMs: 0n, cost: 0n, fee: 0n };
            for (const group of b.groups) for (const k of Object.keys(g) as Array<keyof typeof g>) g[k] += key(group.totals)![k];
            expect(g).toEqual(t);
          }
          // Each bucket equals the records that ended inside it.
          const inside = covered.records.filter((r) => r.endTimeMs >= BigInt(timestampDate(b.startTime!).getTime()) && r.endTimeMs < BigInt(timestampDate(b.endTime!).getTime()));
          expect(t).toEqual(totalsOf(inside));
        }
        expect(bucketSum).toEqual(key(s.totals));
        if (groupBy !== UsageGroupBy.UNSPECIFIED) {
          // Per key across the range, too.
          const byKey = new Map<string, UsageRecord[]>();
          for (const r of covered.records) byKey.set(recordKey[groupBy]!(r), [...(byKey.get(recordKey[groupBy]!(r)) ?? []), r]);
          for (const [k, records] of byKey) {
            const g = { attempts: 0n, gpuMs: 0n, cost: 0n, fee: 0n };
            for (const b of s.buckets) for (const group of b.groups.filter((x) => x.key === k)) for (const f of Object.keys(g) as Array<keyof typeof g>) g[f] += key(group.totals)![f];
            expect(g, `${UsageGranularity[granularity]} ${UsageGroupBy[groupBy]} ${k}`).toEqual(totalsOf(records));
          }
        }
      }
    }
  });

  it("counts outcomes and bills lost attempts nothing", async () => {
    const s = await ngpu.usage.summary({ start: MARCH, end: new Date("2026-03-31T00:00:00Z"), granularity: "day", groupBy: "outcome" });
    const byOutcome = new Map<string, UsageTotals>();
    for (const b of s.buckets) for (const g of b.groups) byOutcome.set(g.key, { ...(byOutcome.get(g.key) ?? g.totals!), attempts: (byOutcome.get(g.key)?.attempts ?? 0n) + g.totals!.attempts, costNanoUsd: (byOutcome.get(g.key)?.costNanoUsd ?? 0n) + g.totals!.costNanoUsd });
    expect(byOutcome.get("LOST")?.costNanoUsd).toBe(0n);
    expect(s.totals?.lost).toBe(byOutcome.get("LOST")?.attempts);
    expect(s.totals?.succeeded).toBe(byOutcome.get("SUCCEEDED")?.attempts);
  });

  it("follows the zone's day boundaries: DST days in New York have 23 and 25 hours; Shanghai days start at 16:00 UTC; Kolkata hours at :30", async () => {
    const { workspaceId, apiKey } = await net.newWorkspace();
    const api = client(net.url, apiKey);
    clients.push(api);
    const db = net.cp.db;
    const app = await seedApp(db, workspaceId);
    const node = await seedNode(db);
    // One attempt ending in every 15-minute bucket around both 2026 changes.
    for (const from of ["2026-03-06T00:00:00Z", "2026-10-30T00:00:00Z"]) {
      await recordInBatches(db, await seedEndedAttempts(db, { workspaceId, appId: app, nodeId: node, count: 4 * 24 * 5, firstStart: new Date(from), spacingMs: 15 * 60_000, executionMs: 1_000 }));
    }
    const ny = "America/New_York";
    const spring = await api.usage.summary({ start: new Date("2026-03-08T05:00:00Z"), end: new Date("2026-03-09T04:00:00Z"), timeZone: ny, granularity: "hour" });
    expect(spring.buckets).toHaveLength(23);
    expect(spring.buckets.every((b) => b.totals?.attempts === 4n)).toBe(true);
    expect(spring.buckets[2]?.localStart).toBe("2026-03-08T03:00:00-04:00");
    const fall = await api.usage.summary({ start: new Date("2026-11-01T04:00:00Z"), end: new Date("2026-11-02T05:00:00Z"), timeZone: ny, granularity: "hour" });
    expect(fall.buckets).toHaveLength(25);
    expect(fall.buckets.map((b) => b.localStart.slice(11))).toContain("01:00:00-05:00");
    expect(fall.buckets.map((b) => b.localStart.slice(11))).toContain("01:00:00-04:00");
    const days = await api.usage.summary({ start: new Date("2026-03-07T05:00:00Z"), end: new Date("2026-03-10T04:00:00Z"), timeZone: ny, granularity: "day" });
    expect(days.buckets.map((b) => timestampDate(b.startTime!).toISOString())).toEqual(["2026-03-07T05:00:00.000Z", "2026-03-08T05:00:00.000Z", "2026-03-09T04:00:00.000Z"]);
    expect(days.buckets.map((b) => b.totals?.attempts)).toEqual([96n, 92n, 96n]);
    // A range inside a day widens to the whole local day.
    const widened = await api.usage.summary({ start: new Date("2026-03-08T12:00:00Z"), end: new Date("2026-03-08T13:00:00Z"), timeZone: ny, granularity: "day" });
    expect(widened.buckets).toHaveLength(1);
    expect(timestampDate(widened.startTime!).toISOString()).toBe("2026-03-08T05:00:00.000Z");
    const shanghai = await api.usage.summary({ start: new Date("2026-03-06T16:00:00Z"), end: new Date("2026-03-09T16:00:00Z"), timeZone: "Asia/Shanghai", granularity: "day" });
    expect(shanghai.buckets.map((b) => timestampDate(b.startTime!).toISOString())).toEqual(["2026-03-06T16:00:00.000Z", "2026-03-07T16:00:00.000Z", "2026-03-08T16:00:00.000Z"]);
    expect(shanghai.buckets.map((b) => b.localStart)).toEqual(["2026-03-07T00:00:00+08:00", "2026-03-08T00:00:00+08:00", "2026-03-09T00:00:00+08:00"]);
    expect(shanghai.buckets.every((b) => b.totals?.attempts === 96n)).toBe(true);
    const kolkata = await api.usage.summary({ start: new Date("2026-03-07T00:00:00Z"), end: new Date("2026-03-07T06:00:00Z"), timeZone: "Asia/Kolkata", granularity: "hour" });
    expect(kolkata.buckets.every((b) => timestampDate(b.startTime!).getUTCMinutes() === 30)).toBe(true);
    expect(kolkata.buckets.every((b) => b.totals?.attempts === 4n)).toBe(true);
  });

  it("refuses bad input with INVALID_ARGUMENT naming the field", async () => {
    const start = MARCH;
    const end = new Date("2026-03-02T00:00:00Z");
    const rejects = async (call: Promise<unknown>, field: string) => {
      const err = await call.then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
      expect(err?.code, field).toBe(Code.InvalidArgument);
      expect(err?.rawMessage.startsWith(`${field}:`), err?.rawMessage).toBe(true);
    };
    await rejects(ngpu.usage.summary({ start, end, granularity: "hour", timeZone: "Mars/Olympus_Mons" }), "time_zone");
    await rejects(ngpu.usage.summary({ start, end, granularity: "hour", timeZone: "+05:30" }), "time_zone");
    await rejects(ngpu.usage.summary({ start: end, end: start, granularity: "hour" }), "end_time");
    await rejects(ngpu.usage.summary({ start, end: new Date("2026-04-15T00:00:00Z"), granularity: "hour" }), "end_time");
    await rejects(ngpu.usage.summary({ start, end: new Date("2029-04-15T00:00:00Z"), granularity: "day" }), "end_time");
    await rejects(ngpu.usage.summary({ start, end, granularity: "day", groupBy: 42 as UsageGroupBy }), "group_by");
    await rejects(ngpu.usage.summary({ start, end, granularity: 0 as UsageGranularity }), "granularity");
    await rejects(ngpu.usage.records({ start: end, end: start }), "filter.end_time");
    await rejects(ngpu.usage.records({ start, end, outcomes: ["EXPLODED"] }), "filter.outcomes[0]");
    await rejects(ngpu.usage.records({ start, end, pageToken: "bm90IGEgdG9rZW4" }), "page_token");
    await rejects(ngpu.usage.estimate({ gpuModel: "NVIDIA Unknown 9000", executionMsPerTask: 10_000, tasksPerMonth: 3000 }), "gpu_model");
    await rejects(ngpu.usage.estimate({ gpuModel: "NVIDIA GeForce RTX 3090", executionMsPerTask: 0, tasksPerMonth: 3000 }), "execution_ms_per_task");
    await rejects(ngpu.usage.setPrice({ gpuModel: "NVIDIA GeForce RTX 3090", nanoUsdPerGpuSecond: 1, effectiveTime: new Date("2020-01-01T00:00:00Z") }), "effective_time");
    // Far outside what Postgres and a Date hold comfortably (the fuzz test found INTERNAL here).
    await rejects(ngpu.usage.setPrice({ gpuModel: "NVIDIA GeForce RTX 3090", nanoUsdPerGpuSecond: 1, effectiveTime: new Date("9999-01-01T00:00:00Z") }), "effective_time");
  });

  it("never shows a workspace another's usage", async () => {
    const { apiKey } = await net.newWorkspace();
    const other = client(net.url, apiKey);
    clients.push(other);
    const range = { start: MARCH, end: new Date("2026-03-31T00:00:00Z") };
    const s = await other.usage.summary({ ...range, granularity: "day" });
    expect(s.totals?.attempts).toBe(0n);
    expect(s.buckets.length).toBe(30);
    expect((await other.usage.records(range)).records).toEqual([]);
    const mine = await ngpu.usage.records({ ...range, pageSize: 1 });
    const err = await other.usage.taskCost(mine.records[0]!.taskId).catch((e: unknown) => ConnectError.from(e));
    expect((err as ConnectError).code).toBe(Code.NotFound);
    // Another workspace's app cannot be named as a filter either.
    const app = await ngpu.usage.records({ ...range, pageSize: 1 });
    const filtered = await other.usage.summary({ ...range, granularity: "day", app: app.records[0]!.appId }).catch((e: unknown) => ConnectError.from(e));
    expect((filtered as ConnectError).code).toBe(Code.NotFound);
    // Only the operator sets prices and the revenue share.
    const denied = await other.usage.setPrice({ gpuModel: "NVIDIA GeForce RTX 3090", nanoUsdPerGpuSecond: 1 }).catch((e: unknown) => ConnectError.from(e));
    expect((denied as ConnectError).code).toBe(Code.PermissionDenied);
    const share = await other.usage.updateBillingSettings({ providerShareBasisPoints: 10_000 }).catch((e: unknown) => ConnectError.from(e));
    expect((share as ConnectError).code).toBe(Code.PermissionDenied);
  });

  it("pages records and exports the same records as CSV", async () => {
    const range = { start: MARCH, end: new Date("2026-04-01T00:00:00Z") };
    const records = await allRecords(ngpu, range.start, range.end);
    expect(records.length).toBe(470);
    expect(new Set(records.map((r) => r.attemptId)).size).toBe(470);
    let csv = "";
    const decoder = new TextDecoder();
    for await (const chunk of ngpu.usage.exportCsv(range)) csv += decoder.decode(chunk, { stream: true });
    const lines = csv.trimEnd().split("\r\n");
    expect(lines[0]?.split(",")).toContain("cost_nano_usd");
    expect(lines.length).toBe(471);
    const costColumn = lines[0]!.split(",").indexOf("cost_nano_usd");
    expect(lines.slice(1).reduce((a, l) => a + BigInt(l.split(",")[costColumn]!), 0n)).toBe(totalsOf(records).cost);
  });

  it("estimates the brief's example: 3,000 ten-second tasks on an RTX 3090 cost 10.98 USD, break-even at 74,557 tasks", async () => {
    const e = await ngpu.usage.estimate({ gpuModel: "NVIDIA GeForce RTX 3090", executionMsPerTask: 10_000, tasksPerMonth: 3000, reservedMonthlyNanoUsd: 272_880_000_000n });
    expect(e.priceNanoUsdPerGpuSecond).toBe(366_000n);
    expect(formatUsd(e.payPerUseMonthlyNanoUsd)).toBe("10.98");
    expect(e.breakEvenTasksPerMonth).toBe(74_557n);
    expect(formatUsd(e.savingsNanoUsd)).toBe("261.90");
  });

  it("sets prices from a future moment on, and the revenue share, as the operator", async () => {
    const at = new Date(Date.now() + 86_400_000);
    const price = await ngpu.usage.setPrice({ gpuModel: "NVIDIA Test Future", nanoUsdPerGpuSecond: 500_000, effectiveTime: at });
    expect(price.inForce).toBe(false);
    const prices = await ngpu.usage.prices();
    expect(prices.find((p) => p.gpuModel === "NVIDIA GeForce RTX 3090" && p.inForce)?.nanoUsdPerGpuSecond).toBe(366_000n);
    expect(prices.some((p) => p.gpuModel === "NVIDIA Test Future")).toBe(true);
    expect((await ngpu.usage.billingSettings()).providerShareBasisPoints).toBe(8000);
    expect((await ngpu.usage.updateBillingSettings({ providerShareBasisPoints: 8000 })).providerShareBasisPoints).toBe(8000);
  });

  it("itemises queue time without the time a lost attempt held its node, and shows that attempt apart", async () => {
    const db = net.cp.db;
    const app = await seedApp(db, net.workspaceId);
    const node = await seedNode(db);
    const taskId = newId("tsk");
    const [lost, won] = [newId("att"), newId("att")];
    // Queued 1 s, attempt 1 runs 8 s and is lost with its node (found 2 s later), queued again 2 s, attempt 2 runs 3 s.
    const at = (s: number) => new Date(Date.UTC(2026, 4, 20, 0, 0, s));
    await db.insertInto("tasks").values({ id: taskId, workspace_id: net.workspaceId, app_id: app, app_version: 1, state: "SUCCEEDED", input: "{}", timeout_ms: 600_000, created_at: at(0), assigned_at: at(13), started_at: at(2), ended_at: at(17), attempt_count: 2 } as never).execute();
    for (const [id, state, created, started, ended] of [[lost, "LOST", 1, 2, 11], [won, "SUCCEEDED", 13, 14, 17]] as const) {
      await sql`INSERT INTO attempts (id, task_id, workspace_id, app_id, node_id, fencing_token, gpu_indices, state, created_at, started_at, ended_at)
        VALUES (${id}, ${taskId}, ${net.workspaceId}, ${app}, ${node}, nextval('attempt_fencing_tokens'), '[0]', ${state}, ${at(created)}, ${at(started)}, ${at(ended)})`.execute(db);
    }
    await recordInBatches(db, [lost, won]);
    const cost = await ngpu.usage.taskCost(taskId);
    expect(cost.queueMs).toBe(3_000n);
    expect(cost.unbilledHeldMs).toBe(10_000n);
    expect(cost.unbilledAttempts).toEqual([expect.objectContaining({ attemptId: lost, nodeId: node, outcome: "LOST", heldMs: 10_000n })]);
    expect(cost.executionMs).toBe(3_000n);
  });

  it("bills a real task run by a worker, and itemises it", async () => {
    const worker = await startTestWorker(net);
    workers.push(worker);
    await ngpu.apps.deploy({ name: "sleeper", runtime: builtin("sleep"), gpu: { count: 1 } });
    const { task } = await ngpu.tasks.run({ app: "sleeper", input: { seconds: 0.3 } }, { waitMs: 30_000 });
    expect(task.state).toBe(TaskState.SUCCEEDED);
    const cost = await ngpu.usage.taskCost(task.id);
    expect(cost.attempts).toHaveLength(1);
    const [record] = cost.attempts;
    expect(record?.gpuModel).toBe("NVIDIA GeForce RTX 3090");
    expect(record?.outcome).toBe("SUCCEEDED");
    expect(record!.gpuMs).toBeGreaterThanOrEqual(300n);
    expect(record!.gpuMs).toBeLessThan(5_000n);
    expect(record!.costNanoUsd).toBe(record!.gpuMs * 366n);
    expect(cost.costNanoUsd).toBe(record!.costNanoUsd);
    expect(cost.totalNanoUsd).toBe(record!.costNanoUsd);
    expect(cost.gpuMs).toBe(record!.gpuMs);
    // The submission and the attempt show in this hour's summary.
    const now = Date.now();
    const s = await ngpu.usage.summary({ start: new Date(now - 3_600_000), end: new Date(now + 60_000), granularity: "hour", groupBy: "app" });
    const apps = s.buckets.flatMap((b) => b.groups);
    const sleeper = (await ngpu.apps.get("sleeper")).id;
    expect(apps.filter((g) => g.key === sleeper).reduce((a, g) => a + g.totals!.submitted, 0n)).toBe(1n);
    expect(apps.filter((g) => g.key === sleeper).reduce((a, g) => a + g.totals!.costNanoUsd, 0n)).toBe(record!.costNanoUsd);
  });

  it("bills a call to a published app to the caller, credits the author's fee, and serves after the author's keys are gone", async () => {
    if (workers.length === 0) workers.push(await startTestWorker(net));
    const author = await net.newWorkspace();
    const caller = await net.newWorkspace();
    const authorApi = client(net.url, author.apiKey);
    const callerApi = client(net.url, caller.apiKey);
    clients.push(authorApi, callerApi);
    const inputSchema = { type: "object", properties: { seconds: { type: "number" } } };
    const { app } = await authorApi.apps.deploy({ name: "styler", runtime: builtin("sleep"), gpu: { count: 1 }, env: { SECRET: "author's" }, inputSchema });
    // Not published yet: another workspace cannot call it, or read it.
    const hidden = await callerApi.tasks.submit({ app: `${author.workspaceId}/styler`, input: {} }).catch((e: unknown) => ConnectError.from(e));
    expect((hidden as ConnectError).code).toBe(Code.NotFound);
    expect(await callerApi.apps.get(app.id).catch((e: unknown) => ConnectError.from(e).code)).toBe(Code.NotFound);
    const published = await authorApi.apps.update({ app: "styler", public: true, callFeeNanoUsd: 5_000_000 });
    expect(published.public).toBe(true);
    expect(published.version).toBe(app.version);
    // Published: any workspace reads what calling it needs, by id or <workspace>/<name>, and none of the author's settings.
    for (const ref of [app.id, `${author.workspaceId}/styler`]) {
      const seen = await callerApi.apps.get(ref);
      expect(seen).toMatchObject({ id: app.id, public: true, callFeeNanoUsd: 5_000_000n, inputSchema, gpu: { count: 1 } });
      expect(seen.env).toEqual({});
      expect(seen.runtime).toBeUndefined();
    }
    // The author's account goes quiet: its keys are revoked. The app keeps serving.
    await net.cp.db.updateTable("api_keys").set({ revoked_at: new Date() }).where("workspace_id", "=", author.workspaceId).execute();
    const first = await callerApi.tasks.run({ app: `${author.workspaceId}/styler`, input: { seconds: 0.2 } }, { waitMs: 30_000 });
    const second = await callerApi.tasks.run({ app: app.id, input: { seconds: 0.1 } }, { waitMs: 30_000 });
    expect([first.task.state, second.task.state]).toEqual([TaskState.SUCCEEDED, TaskState.SUCCEEDED]);
    for (const t of [first.task, second.task]) {
      const cost = await callerApi.usage.taskCost(t.id);
      expect(cost.feeNanoUsd).toBe(5_000_000n);
      expect(cost.costNanoUsd).toBe(cost.gpuMs * 366n);
      expect(cost.totalNanoUsd).toBe(cost.costNanoUsd + 5_000_000n);
    }
    const now = Date.now();
    const range = { start: new Date(now - 3_600_000), end: new Date(now + 60_000), granularity: "hour" as const };
    const callerSummary = await callerApi.usage.summary(range);
    expect(callerSummary.totals?.feeNanoUsd).toBe(10_000_000n);
    expect(callerSummary.totals?.submitted).toBe(2n);
    // The author is credited the fees (keys revoked: read through a fresh key of the same workspace).
    const { createApiKey } = await import("../../control-plane/db/credentials.js");
    const authorAgain = client(net.url, (await createApiKey(net.cp.db, author.workspaceId)).key);
    clients.push(authorAgain);
    const authored = await authorAgain.usage.summary({ ...range, view: "author" });
    expect(authored.totals?.feeNanoUsd).toBe(10_000_000n);
    expect(authored.totals?.attempts).toBe(2n);
    // ...and pays nothing itself.
    expect((await authorAgain.usage.summary(range)).totals?.totalNanoUsd).toBe(0n);
    // The provider (here the operator: the test worker's token names none) earns 80 % of the GPU cost.
    const provided = await ngpu.usage.summary({ ...range, view: "provider" });
    expect(provided.totals?.providerNanoUsd).toBeGreaterThan(0n);
    expect(provided.totals!.providerNanoUsd).toBeLessThanOrEqual((provided.totals!.costNanoUsd * 8n) / 10n);
  });

  it("pays a node's provider its share of the GPU time, per node, queryable like usage", async () => {
    const { createEnrollmentToken } = await import("../../control-plane/db/credentials.js");
    const provider = await net.newWorkspace();
    const providerApi = client(net.url, provider.apiKey);
    clients.push(providerApi);
    const model = "NVIDIA Test Provider GPU";
    await net.cp.db.insertInto("gpu_prices").values({ gpu_model: model, effective_from: new Date("2026-01-01T00:00:00Z"), nano_usd_per_gpu_second: 1_000_001 }).execute();
    const { token } = await createEnrollmentToken(net.cp.db, { name: "provider", providerWorkspaceId: provider.workspaceId });
    const worker = await startTestWorker({ url: net.url, enrollmentToken: token }, [`${model}:24GiB`], { name: "provider-node" });
    workers.push(worker);
    await ngpu.apps.deploy({ name: "on-provider", runtime: builtin("sleep"), gpu: { count: 1, allowedModels: [model] } });
    const { task } = await ngpu.tasks.run({ app: "on-provider", input: { seconds: 0.2 } }, { waitMs: 30_000 });
    expect(task.state).toBe(TaskState.SUCCEEDED);
    const [record] = (await ngpu.usage.taskCost(task.id)).attempts;
    expect(record?.gpuModel).toBe(model);
    const now = Date.now();
    const range = { start: new Date(now - 3_600_000), end: new Date(now + 60_000), granularity: "day" as const };
    const earned = await providerApi.usage.summary({ ...range, view: "provider", groupBy: "node" });
    const nodes = earned.buckets.flatMap((b) => b.groups);
    expect(nodes.map((g) => g.key)).toEqual([record!.nodeId]);
    // 80 % by default, rounded down to the nano-USD.
    expect(earned.totals?.providerNanoUsd).toBe((record!.costNanoUsd * 8000n) / 10000n);
    expect(earned.totals?.gpuMs).toBe(record!.gpuMs);
    // The provider sees its nodes' earnings, not the caller's records.
    expect((await providerApi.usage.records({ start: range.start, end: range.end })).records).toEqual([]);
  });
});
