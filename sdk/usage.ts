// The usage namespace of the SDK: summaries, records, CSV export, per-task cost,
// estimates and the price book. Money is integer nano-USD (see money.ts).
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import {
  type BillingSettings,
  type EstimateCostResponse,
  type GetUsageSummaryResponse,
  type ListUsageRecordsResponse,
  type Price,
  type TaskCost,
  UsageGranularity,
  UsageGroupBy,
  type UsageRecord,
  type UsageRecordFilterSchema,
  type UsageService,
  UsageView,
} from "../gen/ngpu/v1/usage_pb.js";
import type { CallOptions } from "./client.js";
import { paginate } from "./paging.js";
import type { Int64Like } from "./requests.js";

export type GranularityName = "hour" | "day" | "month";
export type GroupByName = "none" | "app" | "gpu_model" | "node" | "outcome";
export type ViewName = "caller" | "provider" | "author";

export interface UsageSummaryInit {
  readonly start: Date;
  readonly end: Date;
  /** IANA zone; default UTC. Buckets are the zone's local hours, days or months. */
  readonly timeZone?: string | undefined;
  readonly granularity: GranularityName | UsageGranularity;
  readonly groupBy?: GroupByName | UsageGroupBy | undefined;
  /** "caller" (default): what you called; "provider": your nodes; "author": calls to your apps. */
  readonly view?: ViewName | UsageView | undefined;
  /** Only this app (id or name). */
  readonly app?: string | undefined;
}

export interface UsageRecordsInit {
  /** Records that ended in [start, end). */
  readonly start: Date;
  readonly end: Date;
  readonly app?: string | undefined;
  readonly nodeId?: string | undefined;
  readonly gpuModel?: string | undefined;
  readonly outcomes?: readonly string[] | undefined;
  readonly taskId?: string | undefined;
  readonly pageSize?: number | undefined;
  readonly pageToken?: string | undefined;
}

export interface EstimateInit {
  readonly gpuModel: string;
  readonly gpuCount?: number | undefined;
  readonly executionMsPerTask: Int64Like;
  readonly tasksPerMonth: Int64Like;
  readonly reservedMonthlyNanoUsd?: Int64Like | undefined;
}

export interface UsageApi {
  /** Sums per local hour, day or month, optionally split by app, GPU model, node or outcome. */
  summary(init: UsageSummaryInit, options?: CallOptions): Promise<GetUsageSummaryResponse>;
  /** One page of usage records, oldest first. */
  records(init: UsageRecordsInit, options?: CallOptions): Promise<ListUsageRecordsResponse>;
  /** Every matching record, fetching pages lazily. */
  recordsAll(init: Omit<UsageRecordsInit, "pageToken">, options?: CallOptions): AsyncIterable<UsageRecord>;
  /** The matching records as CSV text, in chunks (write them out in order). */
  exportCsv(init: Omit<UsageRecordsInit, "pageSize" | "pageToken">, options?: CallOptions): AsyncIterable<Uint8Array>;
  /** One task's itemised cost. */
  taskCost(taskId: string, options?: CallOptions): Promise<TaskCost>;
  estimate(init: EstimateInit, options?: CallOptions): Promise<EstimateCostResponse>;
  prices(options?: CallOptions): Promise<Price[]>;
  /** Operators only. effectiveTime: default now; never in the past. */
  setPrice(init: { gpuModel: string; nanoUsdPerGpuSecond: Int64Like; effectiveTime?: Date | undefined }, options?: CallOptions): Promise<Price>;
  billingSettings(options?: CallOptions): Promise<BillingSettings>;
  /** Operators only. */
  updateBillingSettings(init: { providerShareBasisPoints: number }, options?: CallOptions): Promise<BillingSettings>;
}

const GRANULARITY: Record<GranularityName, UsageGranularity> = { hour: UsageGranularity.HOUR, day: UsageGranularity.DAY, month: UsageGranularity.MONTH };
const GROUP_BY: Record<GroupByName, UsageGroupBy> = {
  none: UsageGroupBy.UNSPECIFIED,
  app: UsageGroupBy.APP,
  gpu_model: UsageGroupBy.GPU_MODEL,
  node: UsageGroupBy.NODE,
  outcome: UsageGroupBy.OUTCOME,
};
const VIEW: Record<ViewName, UsageView> = { caller: UsageView.UNSPECIFIED, provider: UsageView.PROVIDER, author: UsageView.AUTHOR };

function named<T>(table: Record<string, T>, value: string | T, what: string): T {
  if (typeof value !== "string") return value;
  const found = table[value];
  if (found === undefined) throw new TypeError(`${what}: ${JSON.stringify(value)} is not one of ${Object.keys(table).join(", ")}`);
  return found;
}

function filterOf(init: UsageRecordsInit): MessageInitShape<typeof UsageRecordFilterSchema> {
  return {
    startTime: timestampFromDate(init.start),
    endTime: timestampFromDate(init.end),
    app: init.app ?? "",
    nodeId: init.nodeId ?? "",
    gpuModel: init.gpuModel ?? "",
    outcomes: [...(init.outcomes ?? [])],
    taskId: init.taskId ?? "",
  };
}

function required<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new ConnectError(`the server sent no ${what}`, Code.Internal);
  return value;
}

type Unary = (opts: CallOptions | undefined) => { signal: AbortSignal; timeoutMs: number };
type Stream = (opts: CallOptions | undefined) => { signal: AbortSignal; timeoutMs?: number };

export function createUsageApi(client: Client<typeof UsageService>, unary: Unary, stream: Stream): UsageApi {
  const api: UsageApi = {
    summary(init, opts) {
      return client.getUsageSummary(
        {
          startTime: timestampFromDate(init.start),
          endTime: timestampFromDate(init.end),
          timeZone: init.timeZone ?? "",
          granularity: named(GRANULARITY, init.granularity, "granularity"),
          groupBy: named(GROUP_BY, init.groupBy ?? "none", "groupBy"),
          view: named(VIEW, init.view ?? "caller", "view"),
          app: init.app ?? "",
        },
        unary(opts),
      );
    },
    records(init, opts) {
      return client.listUsageRecords({ filter: filterOf(init), pageSize: init.pageSize ?? 0, pageToken: init.pageToken ?? "" }, unary(opts));
    },
    recordsAll(init, opts) {
      return paginate(async (pageToken) => {
        const res = await api.records({ ...init, pageToken }, opts);
        return { items: res.records, nextPageToken: res.nextPageToken };
      });
    },
    async *exportCsv(init, opts) {
      for await (const res of client.exportUsageRecords({ filter: filterOf(init) }, stream(opts))) yield res.chunk;
    },
    async taskCost(taskId, opts) {
      return required((await client.getTaskCost({ taskId }, unary(opts))).cost, "cost");
    },
    estimate(init, opts) {
      return client.estimateCost(
        {
          gpuModel: init.gpuModel,
          gpuCount: init.gpuCount ?? 0,
          executionMsPerTask: BigInt(init.executionMsPerTask),
          tasksPerMonth: BigInt(init.tasksPerMonth),
          reservedMonthlyNanoUsd: BigInt(init.reservedMonthlyNanoUsd ?? 0),
        },
        unary(opts),
      );
    },
    async prices(opts) {
      return (await client.listPrices({}, unary(opts))).prices;
    },
    async setPrice(init, opts) {
      const res = await client.setPrice(
        {
          gpuModel: init.gpuModel,
          nanoUsdPerGpuSecond: BigInt(init.nanoUsdPerGpuSecond),
          ...(init.effectiveTime ? { effectiveTime: timestampFromDate(init.effectiveTime) } : {}),
        },
        unary(opts),
      );
      return required(res.price, "price");
    },
    async billingSettings(opts) {
      return required((await client.getBillingSettings({}, unary(opts))).settings, "settings");
    },
    async updateBillingSettings(init, opts) {
      return required((await client.updateBillingSettings(init, unary(opts))).settings, "settings");
    },
  };
  return api;
}
