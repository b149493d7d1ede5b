import type { Command } from "commander";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import {
  EstimateCostResponseSchema,
  GetUsageSummaryResponseSchema,
  ListUsageRecordsResponseSchema,
  PriceSchema,
  TaskCostSchema,
  formatUsd,
  parseUsd,
  type GranularityName,
  type GroupByName,
  type NgpuClient,
  type UsageRecord,
  type UsageTotals,
  type ViewName,
} from "../../sdk/index.js";
import { messageJson, println, printJson, wantsJson, type CliContext } from "../context.js";
import { CliError, ExitCode, UsageError } from "../errors.js";
import { readFileSync, writeFileSync } from "node:fs";
import { parseReceiptBundle, type ReceiptBundle, verifyReceiptBundle } from "../../sdk/receipts.js";
import { formatDuration, formatTable, formatTime } from "../format.js";
import { parseInteger, usdFlag } from "../parse.js";
import { collect } from "./options.js";

const DAY_MS = 86_400_000;

/**
 * A moment for --from/--to: an ISO 8601 time ("2026-03-08T05:00:00Z"), or a
 * date ("2026-03-08") meaning that day's midnight in the zone, or "now".
 */
export function parseMoment(flag: string, text: string, timeZone: string, now: Date): Date {
  const trimmed = text.trim();
  if (trimmed === "now") return now;
  const date = /^(\d{4})-(\d{2})-(\d{2})$/.exec(trimmed);
  if (date) return zonedMidnight(Number(date[1]), Number(date[2]), Number(date[3]), timeZone);
  // A time without an offset would be read in this machine's zone: ask for one.
  if (!/(Z|[+-]\d{2}:?\d{2})$/i.test(trimmed) || Number.isNaN(Date.parse(trimmed))) {
    throw new UsageError(`${flag}: ${JSON.stringify(text)} is not a date (2026-03-08), a time with its offset (2026-03-08T05:00:00Z) or "now"`);
  }
  return new Date(trimmed);
}

/** The instant a local calendar day starts in a zone (Intl does the zone rules). */
export function zonedMidnight(year: number, month: number, day: number, timeZone: string): Date {
  const utc = Date.UTC(year, month - 1, day);
  let instant = utc - zoneOffsetMs(new Date(utc), timeZone);
  // Once more at the guess: the offset may differ between UTC midnight and local midnight.
  instant = utc - zoneOffsetMs(new Date(instant), timeZone);
  return new Date(instant);
}

function zoneOffsetMs(at: Date, timeZone: string): number {
  let parts: Intl.DateTimeFormatPart[];
  try {
    parts = new Intl.DateTimeFormat("en-US", { timeZone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" }).formatToParts(at);
  } catch {
    throw new UsageError(`--tz: unknown time zone ${JSON.stringify(timeZone)}; use an IANA name such as America/New_York`);
  }
  const get = (type: string) => Number(parts.find((p) => p.type === type)?.value);
  const wall = Date.UTC(get("year"), get("month") - 1, get("day"), get("hour"), get("minute"), get("second"));
  return wall - Math.floor(at.getTime() / 1000) * 1000;
}

const GRANULARITIES: readonly GranularityName[] = ["hour", "day", "month"];
const GROUPS: Readonly<Record<string, GroupByName>> = { none: "none", app: "app", gpu: "gpu_model", "gpu-model": "gpu_model", node: "node", outcome: "outcome" };
const VIEWS: readonly ViewName[] = ["caller", "provider", "author"];

function oneOf<T extends string>(flag: string, value: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(value)) throw new UsageError(`${flag}: ${JSON.stringify(value)} is not one of ${allowed.join(", ")}`);
  return value as T;
}

/** GPU time in seconds with millisecond precision: 30000 → "30.000". */
function gpuSeconds(ms: bigint): string {
  return `${ms / 1000n}.${(ms % 1000n).toString().padStart(3, "0")}`;
}

/** The summary's columns: the API's counts, one each, then GPU time and money. */
const TOTALS_HEADER = ["submitted", "succeeded", "failed", "cancelled", "timed_out", "lost", "released", "GPU s", "USD"];

function totalsRow(t: UsageTotals | undefined): string[] {
  if (!t) return ["0", "0", "0", "0", "0", "0", "0", "0.000", "0.00"];
  return [t.submitted, t.succeeded, t.failed, t.cancelled, t.timedOut, t.lost, t.released].map(String).concat(gpuSeconds(t.gpuMs), formatUsd(t.totalNanoUsd));
}

/**
 * App names for app ids: the workspace's own apps by name, another workspace's
 * published app as "<workspace id>/<name>", an app this key cannot read by its id.
 */
async function appNames(api: NgpuClient, ids: readonly string[], signal: AbortSignal): Promise<Map<string, string>> {
  const names = new Map<string, string>();
  for await (const app of api.apps.listAll({}, { signal })) names.set(app.id, app.name);
  await Promise.all(
    ids
      .filter((id) => !names.has(id))
      .map(async (id) => {
        const app = await api.apps.get(id, { signal }).catch(() => undefined);
        names.set(id, app ? `${app.workspaceId}/${app.name}` : id);
      }),
  );
  return names;
}

interface RangeFlags {
  from?: string;
  to?: string;
  tz?: string;
}

function rangeOf(flags: RangeFlags, defaultDays: number): { start: Date; end: Date; timeZone: string } {
  const timeZone = flags.tz ?? "UTC";
  const now = new Date();
  const end = flags.to ? parseMoment("--to", flags.to, timeZone, now) : now;
  const start = flags.from ? parseMoment("--from", flags.from, timeZone, now) : new Date(end.getTime() - defaultDays * DAY_MS);
  return { start, end, timeZone };
}

function recordRow(r: UsageRecord): string[] {
  return [
    formatTime(new Date(Number(r.endTimeMs))),
    r.taskId,
    r.attemptId,
    r.outcome,
    r.gpuModel,
    gpuSeconds(r.gpuMs),
    formatUsd(r.totalNanoUsd),
  ];
}

export function registerUsageCommands(program: Command, ctx: CliContext): void {
  const usage = program.command("usage").description("what GPU time cost: summaries, records, CSV export, per-task cost, estimates");

  usage
    .command("summary")
    .description("usage per local hour, day or month, optionally split by app, GPU model, node or outcome")
    .option("--from <time>", "start: a date (midnight in --tz), an ISO time with offset, or now (default: 7 days before --to)")
    .option("--to <time>", "end, exclusive (default: now)")
    .option("--tz <zone>", "IANA time zone the buckets follow", "UTC")
    .option("--by <unit>", "hour, day or month", "day")
    .option("--group <what>", "app, gpu, node or outcome")
    .option("--view <side>", "caller (what you called), provider (your nodes' earnings) or author (calls to your apps)", "caller")
    .option("--app <app>", "only this app")
    .action(async (flags: RangeFlags & { by: string; group?: string; view: string; app?: string }, command: Command) => {
      const granularity = oneOf("--by", flags.by, GRANULARITIES);
      const groupBy = flags.group === undefined ? "none" : GROUPS[flags.group];
      if (!groupBy) throw new UsageError(`--group: ${JSON.stringify(flags.group)} is not one of app, gpu, node, outcome`);
      const view = oneOf("--view", flags.view, VIEWS);
      const { start, end, timeZone } = rangeOf(flags, 7);
      const api = ctx.client(command);
      const s = await api.usage.summary({ start, end, timeZone, granularity, groupBy, view, ...(flags.app ? { app: flags.app } : {}) }, { signal: ctx.signal });
      // JSON keeps the API's keys (app ids); the table names apps.
      if (wantsJson(command)) return printJson(ctx, messageJson(GetUsageSummaryResponseSchema, s));
      const keys = [...new Set(s.buckets.flatMap((b) => b.groups.map((g) => g.key)))];
      const names = groupBy === "app" ? await appNames(api, keys, ctx.signal) : new Map<string, string>();
      const header = ["start", ...(groupBy === "none" ? [] : [flags.group ?? ""]), ...TOTALS_HEADER];
      const rows: string[][] = [];
      for (const b of s.buckets) {
        if (groupBy === "none") rows.push([b.localStart, ...totalsRow(b.totals)]);
        else for (const g of b.groups) rows.push([b.localStart, names.get(g.key) ?? g.key, ...totalsRow(g.totals)]);
      }
      rows.push(["total", ...(groupBy === "none" ? [] : [""]), ...totalsRow(s.totals)]);
      println(ctx.stdout, formatTable(header, rows));
      if (view === "provider") println(ctx.stdout, `earned: ${formatUsd(s.totals?.providerNanoUsd ?? 0n)} USD`);
      if (view === "author") println(ctx.stdout, `fees credited: ${formatUsd(s.totals?.feeNanoUsd ?? 0n)} USD`);
    });

  const filterOptions = (c: Command) =>
    c
      .option("--from <time>", "records that ended from then (default: 30 days before --to)")
      .option("--to <time>", "until then, exclusive (default: now)")
      .option("--tz <zone>", "zone of plain dates in --from/--to", "UTC")
      .option("--app <app>", "only this app")
      .option("--node <id>", "only this node")
      .option("--gpu <model>", "only this GPU model")
      .option("--outcome <outcome>", "only this outcome (repeatable)", collect)
      .option("--task <id>", "only this task");
  type FilterFlags = RangeFlags & { app?: string; node?: string; gpu?: string; outcome?: string[]; task?: string };
  const filterOf = (flags: FilterFlags) => {
    const { start, end } = rangeOf(flags, 30);
    return {
      start,
      end,
      ...(flags.app ? { app: flags.app } : {}),
      ...(flags.node ? { nodeId: flags.node } : {}),
      ...(flags.gpu ? { gpuModel: flags.gpu } : {}),
      outcomes: flags.outcome ?? [],
      ...(flags.task ? { taskId: flags.task } : {}),
    };
  };

  filterOptions(usage.command("records").description("usage records, one per ended attempt, oldest first"))
    .option("--limit <n>", "records per page (1-500)", "100")
    .option("--page-token <token>", "continue from a previous page")
    .action(async (flags: FilterFlags & { limit: string; pageToken?: string }, command: Command) => {
      const pageSize = parseInteger("--limit", flags.limit, { min: 1, max: 500 });
      const res = await ctx.client(command).usage.records({ ...filterOf(flags), pageSize, ...(flags.pageToken ? { pageToken: flags.pageToken } : {}) }, { signal: ctx.signal });
      if (wantsJson(command)) return printJson(ctx, messageJson(ListUsageRecordsResponseSchema, res));
      println(ctx.stdout, res.records.length === 0 ? "no usage records" : formatTable(["ended", "task", "attempt", "outcome", "GPU", "GPU s", "USD"], res.records.map(recordRow)));
      if (res.nextPageToken) println(ctx.stderr, `more: --page-token ${res.nextPageToken}`);
    });

  filterOptions(usage.command("export").description("usage records as CSV on stdout (ngpu usage export > usage.csv)")).action(async (flags: FilterFlags, command: Command) => {
    for await (const chunk of ctx.client(command).usage.exportCsv(filterOf(flags), { signal: ctx.signal })) ctx.stdout.write(chunk);
  });

  usage
    .command("task")
    .description("a task's cost, itemised: queue, cold start, execution, each attempt, money")
    .argument("<task-id>", "task id")
    .action(async (taskId: string, _flags: unknown, command: Command) => {
      const cost = await ctx.client(command).usage.taskCost(taskId, { signal: ctx.signal });
      if (wantsJson(command)) return printJson(ctx, messageJson(TaskCostSchema, cost));
      const lines = [
        `task        ${cost.taskId} (${cost.state})`,
        `queue       ${formatDuration(cost.queueMs)} (not billed)`,
        ...cost.unbilledAttempts.map((a) => `${a.outcome.toLowerCase().padEnd(11)} ${formatDuration(a.heldMs)} held by attempt ${a.attemptId} on ${a.nodeId} (not billed)`),
        `cold start  ${formatDuration(cost.coldStartMs)} (not billed)`,
        `execution   ${formatDuration(cost.executionMs)}, ${gpuSeconds(cost.gpuMs)} GPU-seconds`,
        `GPU time    ${formatUsd(cost.costNanoUsd)} USD`,
        ...(cost.feeNanoUsd > 0n ? [`app fee     ${formatUsd(cost.feeNanoUsd)} USD`] : []),
        `total       ${formatUsd(cost.totalNanoUsd)} USD`,
      ];
      println(ctx.stdout, lines.join("\n"));
      if (cost.attempts.length > 0) {
        println(ctx.stdout);
        const rows = cost.attempts.map((a) => [a.attemptId, a.outcome, a.nodeId, `${a.gpuCount}× ${a.gpuModel}`, formatDuration(a.executionMs), `${formatUsd(a.priceNanoUsdPerGpuSecond)}/s`, formatUsd(a.totalNanoUsd)]);
        println(ctx.stdout, formatTable(["attempt", "outcome", "node", "GPUs", "execution", "price", "USD"], rows));
      }
    });

  usage
    .command("estimate")
    .description("pay-per-use against a reserved server, and the break-even volume")
    .requiredOption("--gpu <model>", 'GPU model, e.g. "NVIDIA GeForce RTX 3090"')
    .requiredOption("--seconds <n>", "execution time of one task, in seconds (up to 3 decimals)")
    .requiredOption("--tasks <n>", "tasks per month")
    .option("--gpus <n>", "GPUs per task", "1")
    .option("--reserved-monthly-usd <usd>", "monthly price of the reserved server to compare with")
    .action(async (flags: { gpu: string; seconds: string; tasks: string; gpus: string; reservedMonthlyUsd?: string }, command: Command) => {
      const secondsNano = parseUsd(flags.seconds); // the same exact decimal parsing: seconds with up to 9 decimals
      if (secondsNano === undefined || secondsNano % 1_000_000n !== 0n || secondsNano === 0n) {
        throw new UsageError(`--seconds: ${JSON.stringify(flags.seconds)} is not a positive number of seconds with at most 3 decimals`);
      }
      const reserved = flags.reservedMonthlyUsd === undefined ? 0n : usdFlag("--reserved-monthly-usd", flags.reservedMonthlyUsd, "272.88");
      const tasks = parseInteger("--tasks", flags.tasks, { min: 0 });
      const e = await ctx.client(command).usage.estimate(
        {
          gpuModel: flags.gpu,
          gpuCount: parseInteger("--gpus", flags.gpus, { min: 1, max: 16 }),
          executionMsPerTask: secondsNano / 1_000_000n,
          tasksPerMonth: tasks,
          reservedMonthlyNanoUsd: reserved,
        },
        { signal: ctx.signal },
      );
      if (wantsJson(command)) return printJson(ctx, messageJson(EstimateCostResponseSchema, e));
      const lines = [
        `price         ${formatUsd(e.priceNanoUsdPerGpuSecond)} USD per GPU-second (${flags.gpu})`,
        `per task      ${formatUsd(e.costPerTaskNanoUsd)} USD`,
        `pay per use   ${formatUsd(e.payPerUseMonthlyNanoUsd)} USD/month for ${tasks.toLocaleString("en-US")} tasks`,
      ];
      if (reserved > 0n) {
        lines.push(
          `reserved      ${formatUsd(reserved)} USD/month`,
          `break-even    ${e.breakEvenTasksPerMonth.toLocaleString("en-US")} tasks/month (pay-per-use costs less up to there)`,
          e.savingsNanoUsd >= 0n ? `you save      ${formatUsd(e.savingsNanoUsd)} USD/month with pay-per-use` : `you save      ${formatUsd(-e.savingsNanoUsd)} USD/month with the reserved server`,
        );
      }
      println(ctx.stdout, lines.join("\n"));
    });

  const prices = program.command("prices").description("the price book: USD per GPU-second for each GPU model");
  prices
    .command("list")
    .description("every price, current and scheduled")
    .action(async (_flags: unknown, command: Command) => {
      const list = await ctx.client(command).usage.prices({ signal: ctx.signal });
      if (wantsJson(command)) return printJson(ctx, { prices: list.map((p) => messageJson(PriceSchema, p)) });
      const rows = list.map((p) => [p.gpuModel, formatUsd(p.nanoUsdPerGpuSecond), formatTime(p.effectiveTime ? timestampDate(p.effectiveTime) : undefined), p.inForce ? "in force" : ""]);
      println(ctx.stdout, formatTable(["GPU model", "USD/GPU-s", "from", ""], rows));
    });
  prices
    .command("set")
    .description("set a GPU model's price from now (or --from) on; past usage keeps its price (operators only)")
    .argument("<gpu-model>", 'e.g. "NVIDIA GeForce RTX 3090"')
    .argument("<usd-per-second>", "e.g. 0.000366")
    .option("--from <time>", "when it takes effect (ISO time with offset); default now")
    .action(async (model: string, usd: string, flags: { from?: string }, command: Command) => {
      const nano = usdFlag("<usd-per-second>", usd, "0.000366");
      const effectiveTime = flags.from ? parseMoment("--from", flags.from, "UTC", new Date()) : undefined;
      const price = await ctx.client(command).usage.setPrice({ gpuModel: model, nanoUsdPerGpuSecond: nano, effectiveTime }, { signal: ctx.signal });
      if (wantsJson(command)) return printJson(ctx, messageJson(PriceSchema, price));
      println(ctx.stdout, `${price.gpuModel}: ${formatUsd(price.nanoUsdPerGpuSecond)} USD per GPU-second ${price.inForce ? "from now" : `from ${formatTime(price.effectiveTime ? timestampDate(price.effectiveTime) : undefined)}`}`);
    });
  prices
    .command("provider-share")
    .description("show, or set (operators only), the providers' share of GPU-time cost in percent")
    .argument("[percent]", "e.g. 80 or 82.5")
    .action(async (percent: string | undefined, _flags: unknown, command: Command) => {
      const api = ctx.client(command).usage;
      let settings;
      if (percent === undefined) settings = await api.billingSettings({ signal: ctx.signal });
      else {
        const m = /^(\d{1,3})(?:\.(\d{1,2}))?$/.exec(percent.trim());
        const bp = m ? Number(m[1]) * 100 + Number((m[2] ?? "").padEnd(2, "0")) : Number.NaN;
        if (!(bp >= 0 && bp <= 10_000)) throw new UsageError(`[percent]: ${JSON.stringify(percent)} is not a percentage between 0 and 100 (at most 2 decimals)`);
        settings = await api.updateBillingSettings({ providerShareBasisPoints: bp }, { signal: ctx.signal });
      }
      if (wantsJson(command)) return printJson(ctx, { providerShareBasisPoints: settings.providerShareBasisPoints });
      println(ctx.stdout, `providers get ${settings.providerShareBasisPoints / 100} % of GPU-time cost`);
    });

  usage
    .command("verify")
    .description("check the workspace's usage receipts here, trusting nothing the server says: signatures, the chain, and that every billed record is the one that was signed")
    .option("--export <file>", "also write what was fetched to a file, to check later with --file")
    .option("--file <file>", "check a file written by --export (offline: no server needed)")
    .action(async (flags: { export?: string; file?: string }, command: Command) => {
      const bundle = flags.file
        ? readBundleFile(flags.file)
        : await ctx.client(command).receipts.fetch({ signal: ctx.signal });
      if (flags.export) writeFileSync(flags.export, JSON.stringify(bundle) + "\n");
      const result = verifyReceiptBundle(bundle);
      if (wantsJson(command)) printJson(ctx, { ok: result.ok, receipts: result.receipts, problems: result.problems, unreceiptedRecords: bundle.unreceiptedRecords });
      else {
        for (const p of result.problems) println(ctx.stdout, `FAIL ${p}`);
        println(ctx.stdout, result.ok ? `ok: ${result.receipts} receipts verify` : `${result.problems.length} problems in ${result.receipts} receipts`);
        if (bundle.unreceiptedRecords > 0) println(ctx.stderr, `note: ${bundle.unreceiptedRecords} usage records have no receipt yet (receipts follow within a second)`);
      }
      if (!result.ok) throw new CliError("", ExitCode.FAILED);
    });
}

/** Reads a file written by `usage verify --export`; a wrong or damaged file is a usage error naming it. */
function readBundleFile(file: string): ReceiptBundle {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new UsageError(`--file: cannot read ${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
  try {
    return parseReceiptBundle(JSON.parse(text));
  } catch (err) {
    throw new UsageError(`${file} is not a receipts export (write one with: ngpu usage verify --export ${file}): ${err instanceof Error ? err.message : String(err)}`);
  }
}
