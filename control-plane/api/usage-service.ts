import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  type ExportUsageRecordsResponse,
  ExportUsageRecordsResponseSchema,
  UsageBucketSchema,
  UsageGranularity,
  UsageGroupBy,
  type UsageRecordFilter,
  UsageService,
  UsageView,
} from "../../gen/ngpu/v1/usage_pb.js";
import { findCallableApp } from "../db/apps.js";
import type { Principal } from "../db/credentials.js";
import type { Db } from "../db/database.js";
import { getProviderShare, listPrices, priceAt, setPrice, setProviderShare } from "../db/prices.js";
import { getTask } from "../db/tasks.js";
import { invalidArgument, NgpuError } from "../errors.js";
import { estimateCost } from "../metering/estimate.js";
import { csvHeader, csvLine, eachUsageRecordPage, listUsageRecords, type RecordFilter, taskUsageRecords } from "../metering/records.js";
import { type GroupBy, summarizeUsage, type UsageScope } from "../metering/summaries.js";
import { checkRange, checkTimeZone, type Granularity, isUnknownZoneError, localTime, MAX_RANGE_DAYS, MAX_RECORD_RANGE_DAYS } from "../metering/usage-window.js";
import { type Authenticate, requireOperator, requireWorkspaceRead, usageApps } from "./auth.js";
import { priceToProto, usageRecordToProto, usageTotalsToProto } from "./convert.js";
import { taskTimes } from "../metering/task-times.js";
import { checkPageSize, checkTimestamp, decodePageToken, encodePageToken, requireString } from "./validate.js";

export interface UsageServiceDeps {
  readonly db: Db;
  readonly authenticate: Authenticate;
}

const GRANULARITIES: ReadonlyMap<UsageGranularity, Granularity> = new Map([
  [UsageGranularity.HOUR, "hour"],
  [UsageGranularity.DAY, "day"],
  [UsageGranularity.MONTH, "month"],
]);

const GROUPS: ReadonlyMap<UsageGroupBy, GroupBy> = new Map([
  [UsageGroupBy.UNSPECIFIED, "none"],
  [UsageGroupBy.APP, "app"],
  [UsageGroupBy.GPU_MODEL, "gpu_model"],
  [UsageGroupBy.NODE, "node"],
  [UsageGroupBy.OUTCOME, "outcome"],
]);

const OUTCOMES = ["SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT", "LOST", "RELEASED"];

/** Largest price accepted: 1,000 USD per GPU-second. */
const MAX_PRICE_NANO_USD = 1_000_000_000_000n;
/** Largest estimate inputs: a day per task, a billion tasks a month, a million USD a month. */
const MAX_TASK_MS = 86_400_000n;
const MAX_TASKS = 1_000_000_000n;
const MAX_RESERVED_NANO_USD = 1_000_000n * 1_000_000_000n;

/** Runs a query that uses a time zone; Postgres refusing the zone is the caller's bad input. */
async function withZone<T>(field: string, zone: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if (isUnknownZoneError(err)) throw invalidArgument(field, `unknown time zone ${JSON.stringify(zone)}`);
    throw err;
  }
}

export function createUsageService(deps: UsageServiceDeps): ServiceImpl<typeof UsageService> {
  const { db, authenticate } = deps;

  async function recordFilter(principal: Principal, f: UsageRecordFilter | undefined): Promise<RecordFilter> {
    const range = checkRange({ start: "filter.start_time", end: "filter.end_time" }, f?.startTime, f?.endTime, MAX_RECORD_RANGE_DAYS);
    const outcomes = (f?.outcomes ?? []).map((o, i) => {
      const name = o.toUpperCase();
      if (!OUTCOMES.includes(name)) throw invalidArgument(`filter.outcomes[${i}]`, `must be one of ${OUTCOMES.join(", ")}`);
      return name;
    });
    return {
      workspaceId: principal.workspaceId,
      ...range,
      ...(f?.app ? { appId: (await findCallableApp(db, principal.workspaceId, requireString("filter.app", f.app, 200))).id } : {}),
      ...(f?.nodeId ? { nodeId: requireString("filter.node_id", f.nodeId, 64) } : {}),
      ...(f?.gpuModel ? { gpuModel: requireString("filter.gpu_model", f.gpuModel, 128) } : {}),
      outcomes,
      ...(f?.taskId ? { taskId: requireString("filter.task_id", f.taskId, 64) } : {}),
    };
  }

  return {
    async getUsageSummary(req, ctx) {
      const principal = await authenticate(ctx);
      const onlyApps = usageApps(principal, "reading usage");
      const granularity = GRANULARITIES.get(req.granularity);
      if (!granularity) throw invalidArgument("granularity", "is required: HOUR, DAY or MONTH");
      const groupBy = GROUPS.get(req.groupBy);
      if (!groupBy) throw invalidArgument("group_by", `unknown group ${req.groupBy}: use APP, GPU_MODEL, NODE, OUTCOME or leave it unset`);
      const timeZone = checkTimeZone("time_zone", req.timeZone);
      const range = checkRange({ start: "start_time", end: "end_time" }, req.startTime, req.endTime, MAX_RANGE_DAYS[granularity]);
      let scope: UsageScope;
      switch (req.view) {
        case UsageView.UNSPECIFIED:
          scope = { view: "caller", workspaceId: principal.workspaceId };
          break;
        case UsageView.PROVIDER:
          scope = { view: "provider", workspaceId: principal.workspaceId, includeOperatorNodes: principal.operator };
          break;
        case UsageView.AUTHOR:
          scope = { view: "author", workspaceId: principal.workspaceId };
          break;
        default:
          throw invalidArgument("view", `unknown view ${req.view}: use PROVIDER, AUTHOR or leave it unset`);
      }
      if (onlyApps && scope.view !== "caller") throw new NgpuError("PERMISSION_DENIED", `the ${scope.view} view needs a FULL or READ_ONLY key; this is a WIDGET key (${principal.keyId})`);
      const appId = req.app ? (await findCallableApp(db, principal.workspaceId, requireString("app", req.app, 200))).id : undefined;
      if (onlyApps && appId && !onlyApps.includes(appId)) throw new NgpuError("PERMISSION_DENIED", `app: this WIDGET key (${principal.keyId}) may not read usage of ${JSON.stringify(req.app)}`);
      const summary = await withZone("time_zone", timeZone, () =>
        summarizeUsage(db, { scope, ...range, timeZone, granularity, groupBy, ...(appId ? { appId } : {}), ...(onlyApps ? { appIds: onlyApps } : {}) }),
      );
      return {
        buckets: summary.buckets.map((b) =>
          create(UsageBucketSchema, {
            startTime: timestampFromDate(b.start),
            endTime: timestampFromDate(b.end),
            localStart: localTime(b.start, b.offsetMinutes),
            totals: usageTotalsToProto(b.totals),
            groups: b.groups.map((g) => ({ key: g.key, totals: usageTotalsToProto(g.sums) })),
          }),
        ),
        totals: usageTotalsToProto(summary.totals),
        startTime: timestampFromDate(summary.start),
        endTime: timestampFromDate(summary.end),
        timeZone,
      };
    },

    async listUsageRecords(req, ctx) {
      const principal = await authenticate(ctx);
      requireWorkspaceRead(principal, "reading usage records");
      const limit = checkPageSize("page_size", req.pageSize, 100);
      const filter = await recordFilter(principal, req.filter);
      const cursor = decodePageToken("page_token", req.pageToken, "t", "number") as { t: number; a?: unknown } | undefined;
      if (cursor && typeof cursor.a !== "string") throw invalidArgument("page_token", "is not a page token this API issued");
      const rows = await listUsageRecords(db, filter, limit + 1, cursor ? { endedAtMs: cursor.t, attemptId: String(cursor.a) } : undefined);
      const page = rows.slice(0, limit);
      const last = page[page.length - 1];
      return {
        records: page.map(usageRecordToProto),
        nextPageToken: rows.length > limit && last ? encodePageToken({ t: last.ended_at_ms, a: last.attempt_id }) : "",
      };
    },

    async *exportUsageRecords(req, ctx): AsyncGenerator<ExportUsageRecordsResponse> {
      const principal = await authenticate(ctx);
      requireWorkspaceRead(principal, "exporting usage records");
      const filter = await recordFilter(principal, req.filter);
      const encoder = new TextEncoder();
      yield create(ExportUsageRecordsResponseSchema, { chunk: encoder.encode(csvHeader()) });
      for await (const page of eachUsageRecordPage(db, filter)) {
        if (ctx.signal.aborted) return;
        yield create(ExportUsageRecordsResponseSchema, { chunk: encoder.encode(page.map(csvLine).join("")) });
      }
    },

    async getTaskCost(req, ctx) {
      const principal = await authenticate(ctx);
      requireWorkspaceRead(principal, "reading the cost of a task");
      const taskId = requireString("task_id", req.taskId, 64);
      const task = await getTask(db, principal.workspaceId, taskId);
      const [records, attempts] = await Promise.all([
        taskUsageRecords(db, taskId),
        db.selectFrom("attempts").select(["id", "node_id", "state", "created_at", "ended_at", "cold_start_ms"]).where("task_id", "=", taskId).orderBy("created_at").execute(),
      ]);
      const sum = (pick: (r: (typeof records)[number]) => number) => records.reduce((acc, r) => acc + BigInt(pick(r)), 0n);
      const cost = sum((r) => r.cost_nano_usd);
      const fee = sum((r) => r.fee_nano_usd);
      const time = taskTimes(task, attempts, new Date());
      return {
        cost: {
          taskId,
          state: task.state,
          queueMs: BigInt(time.queueMs),
          coldStartMs: attempts.reduce((acc, a) => acc + BigInt(a.cold_start_ms), 0n),
          unbilledHeldMs: time.unbilled.reduce((acc, a) => acc + a.heldMs, 0n),
          unbilledAttempts: time.unbilled,
          executionMs: sum((r) => r.execution_ms),
          gpuMs: sum((r) => r.gpu_ms),
          costNanoUsd: cost,
          feeNanoUsd: fee,
          totalNanoUsd: cost + fee,
          attempts: records.map(usageRecordToProto),
        },
      };
    },

    async estimateCost(req, ctx) {
      await authenticate(ctx);
      const model = requireString("gpu_model", req.gpuModel, 128);
      if (req.gpuCount > 16) throw invalidArgument("gpu_count", "must be at most 16");
      if (req.executionMsPerTask <= 0n || req.executionMsPerTask > MAX_TASK_MS) throw invalidArgument("execution_ms_per_task", `must be between 1 and ${MAX_TASK_MS}`);
      if (req.tasksPerMonth < 0n || req.tasksPerMonth > MAX_TASKS) throw invalidArgument("tasks_per_month", `must be between 0 and ${MAX_TASKS}`);
      if (req.reservedMonthlyNanoUsd < 0n || req.reservedMonthlyNanoUsd > MAX_RESERVED_NANO_USD) {
        throw invalidArgument("reserved_monthly_nano_usd", `must be between 0 and ${MAX_RESERVED_NANO_USD}`);
      }
      const price = await priceAt(db, model, new Date());
      if (!price) throw invalidArgument("gpu_model", `no price for ${JSON.stringify(model)}; see ListPrices`);
      const estimate = estimateCost({
        priceNanoUsdPerGpuSecond: BigInt(price.nanoUsdPerGpuSecond),
        gpuCount: BigInt(req.gpuCount || 1),
        executionMsPerTask: req.executionMsPerTask,
        tasksPerMonth: req.tasksPerMonth,
        reservedMonthlyNanoUsd: req.reservedMonthlyNanoUsd,
      });
      return { priceNanoUsdPerGpuSecond: BigInt(price.nanoUsdPerGpuSecond), ...estimate };
    },

    async listPrices(_req, ctx) {
      await authenticate(ctx);
      return { prices: (await listPrices(db)).map(priceToProto) };
    },

    async setPrice(req, ctx) {
      const principal = await authenticate(ctx);
      requireOperator(principal, "setting prices");
      const model = requireString("gpu_model", req.gpuModel.trim(), 128);
      if (req.nanoUsdPerGpuSecond < 0n || req.nanoUsdPerGpuSecond > MAX_PRICE_NANO_USD) {
        throw invalidArgument("nano_usd_per_gpu_second", `must be between 0 and ${MAX_PRICE_NANO_USD}`);
      }
      let from: Date | "now" = "now";
      if (req.effectiveTime) {
        from = checkTimestamp("effective_time", req.effectiveTime);
        if (from.getTime() < Date.now()) throw invalidArgument("effective_time", "must not be in the past: recorded usage keeps the price it was billed at");
      }
      return { price: priceToProto(await setPrice(db, model, Number(req.nanoUsdPerGpuSecond), from)) };
    },

    async getBillingSettings(_req, ctx) {
      await authenticate(ctx);
      return { settings: { providerShareBasisPoints: await getProviderShare(db) } };
    },

    async updateBillingSettings(req, ctx) {
      const principal = await authenticate(ctx);
      requireOperator(principal, "changing the revenue share");
      if (req.providerShareBasisPoints > 10_000) throw invalidArgument("provider_share_basis_points", "must be between 0 and 10000 (100 %)");
      return { settings: { providerShareBasisPoints: await setProviderShare(db, req.providerShareBasisPoints) } };
    },
  };
}
