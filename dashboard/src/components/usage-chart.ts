import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { css, html, LitElement } from "lit";
import { type GetUsageSummaryResponse, UsageGranularity, UsageGroupBy, type UsageTotals, UsageView } from "../../../gen/ngpu/v1/usage_pb.js";
import type { Api } from "../api.js";
import { duration, usd } from "../format.js";
import { shared } from "../styles.js";
import type { ChartSeries } from "./chart.js";
import "./chart.js";

const COLORS = ["#3b6fe0", "#e0663b", "#2f9e5b", "#9b3be0", "#c9a100", "#0fa3b1", "#d64a8b", "#6b7385"];

/** What a usage chart plots. */
export type UsageMetric = "tasks" | "gpu-seconds" | "cost" | "earnings";

const METRICS: Record<UsageMetric, { label: string; pick: (t: UsageTotals, grouped: boolean) => number; text: (t: UsageTotals, grouped: boolean) => string }> = {
  // Submissions are not split by GPU model: count the attempts that ended there instead.
  tasks: { label: "tasks", pick: (t, grouped) => Number(grouped ? t.attempts : t.submitted), text: (t, grouped) => (grouped ? `${t.attempts} ran` : `${t.submitted} submitted, ${t.attempts} ran`) },
  "gpu-seconds": { label: "GPU-seconds", pick: (t) => Number(t.gpuMs) / 1000, text: (t) => `${duration(t.gpuMs)} of GPU time` },
  // Plotted as USD (a picture); totals are printed from the integers.
  cost: { label: "cost (USD)", pick: (t) => Number(t.totalNanoUsd) / 1e9, text: (t) => usd(t.totalNanoUsd) },
  earnings: { label: "earnings (USD)", pick: (t) => Number(t.providerNanoUsd) / 1e9, text: (t) => usd(t.providerNanoUsd) },
};

const GRANULARITY: Record<string, UsageGranularity> = { hour: UsageGranularity.HOUR, day: UsageGranularity.DAY };
const GROUP_BY: Record<string, UsageGroupBy> = { "": UsageGroupBy.UNSPECIFIED, app: UsageGroupBy.APP, "gpu-model": UsageGroupBy.GPU_MODEL, node: UsageGroupBy.NODE };

/**
 * A usage chart: one metric per hour or day of a time zone over the last `days` days,
 * optionally one line per app, GPU model or node. Fetches its own data (GetUsageSummary)
 * with the `api` it is given, and refreshes every 30 s.
 */
export class NgpuUsageChart extends LitElement {
  static override properties = {
    api: { attribute: false },
    metric: {},
    granularity: {},
    groupBy: { attribute: "group-by" },
    timeZone: { attribute: "time-zone" },
    days: { type: Number },
    view: {},
    summary: { state: true },
    names: { state: true },
    error: { state: true },
  };
  static override styles = [shared, css`.head { display: flex; justify-content: space-between; align-items: baseline; } .total { font-weight: 600; }`];
  declare api: Api | undefined;
  declare metric: UsageMetric;
  declare granularity: "hour" | "day";
  declare groupBy: "" | "app" | "gpu-model" | "node";
  declare timeZone: string;
  declare days: number;
  declare view: "" | "provider";
  declare summary: GetUsageSummaryResponse | undefined;
  declare names: Map<string, string>;
  declare error: string;
  private timer: ReturnType<typeof setInterval> | undefined;
  private loaded = "";

  constructor() {
    super();
    this.api = undefined;
    this.metric = "cost";
    this.granularity = "day";
    this.groupBy = "";
    this.timeZone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    this.days = 7;
    this.view = "";
    this.summary = undefined;
    this.names = new Map();
    this.error = "";
  }

  override connectedCallback(): void {
    super.connectedCallback();
    this.timer = setInterval(() => void this.load(), 30_000);
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    clearInterval(this.timer);
  }

  protected override updated(): void {
    const key = JSON.stringify([this.granularity, this.groupBy, this.timeZone, this.days, this.view, !!this.api]);
    if (key !== this.loaded) {
      this.loaded = key;
      void this.load();
    }
  }

  /** Fetches again now. */
  async load(): Promise<void> {
    if (!this.api) return;
    const end = new Date();
    const start = new Date(end.getTime() - this.days * 24 * 3600_000);
    try {
      const summary = await this.api.usage.getUsageSummary({
        startTime: timestampFromDate(start),
        endTime: timestampFromDate(end),
        timeZone: this.timeZone,
        granularity: GRANULARITY[this.granularity] ?? UsageGranularity.DAY,
        groupBy: GROUP_BY[this.groupBy] ?? UsageGroupBy.UNSPECIFIED,
        view: this.view === "provider" ? UsageView.PROVIDER : UsageView.UNSPECIFIED,
      });
      if (this.groupBy === "app" && this.names.size === 0) {
        const { apps } = await this.api.apps.listApps({ pageSize: 500 });
        this.names = new Map(apps.map((a) => [a.id, a.name]));
      }
      this.summary = summary;
      this.error = "";
    } catch (err) {
      const e = ConnectError.from(err);
      this.error = e.code === Code.Unimplemented ? "Usage is not available on this control plane." : e.rawMessage;
    }
  }

  override render() {
    const m = METRICS[this.metric] ?? METRICS.cost;
    const s = this.summary;
    if (this.error) return html`<p class="error">${this.error}</p>`;
    if (!s) return html`<p class="muted">Loading ${m.label}…</p>`;
    const x = s.buckets.map((b) => (b.startTime ? timestampDate(b.startTime).getTime() / 1000 : 0));
    const grouped = this.groupBy !== "";
    let series: ChartSeries[];
    if (grouped) {
      const keys = [...new Set(s.buckets.flatMap((b) => b.groups.map((g) => g.key)))].sort();
      series = keys.map((key, i) => ({
        label: this.names.get(key) ?? key,
        color: COLORS[i % COLORS.length]!,
        scale: "v",
        values: s.buckets.map((b) => {
          const g = b.groups.find((x) => x.key === key);
          return g?.totals ? m.pick(g.totals, true) : 0;
        }),
      }));
    } else {
      series = [{ label: m.label, color: COLORS[0]!, scale: "v", bars: true, values: s.buckets.map((b) => (b.totals ? m.pick(b.totals, false) : 0)) }];
    }
    return html`<div class="head"><span>${m.label} per ${this.granularity}</span><span class="total">${s.totals ? m.text(s.totals, grouped) : ""}</span></div>
      <ngpu-chart .x=${x} .series=${series} .axes=${[{ scale: "v", label: m.label }]} time-zone=${this.timeZone} .height=${200}></ngpu-chart>`;
  }
}
customElements.define("ngpu-usage-chart-view", NgpuUsageChart);
