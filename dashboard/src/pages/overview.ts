import { css, html, LitElement } from "lit";
import { type Node, NodeState } from "../../../gen/ngpu/v1/node_pb.js";
import type { Api } from "../api.js";
import { bytes, percent } from "../format.js";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { GpuTelemetrySeries } from "../../../gen/ngpu/v1/telemetry_pb.js";
import "../components/chart.js";
import { Poller } from "../poll.js";
import { shared } from "../styles.js";
import { alignSeries } from "../telemetry-series.js";

/** The window of each node's utilisation chart. */
const HISTORY_MS = 10 * 60_000;

/** Nodes and their GPUs with live utilisation, VRAM, temperature and power (polled every second). */
export class OverviewPage extends LitElement {
  static override properties = { api: { attribute: false }, nodes: { state: true }, history: { state: true }, error: { state: true }, lastUpdate: { state: true } };
  static override styles = [
    shared,
    css`
      .grid { grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); }
      .gpu { display: grid; grid-template-columns: 1.3fr repeat(4, 1fr); gap: 10px; align-items: center; padding: 6px 0; border-top: 1px solid #eef0f3; }
      .gpu .label { font-size: 12px; color: #6b7385; }
      .node-head { display: flex; justify-content: space-between; align-items: baseline; }
    `,
  ];
  declare api: Api;
  declare nodes: Node[] | undefined;
  declare error: string;
  declare lastUpdate: Date | undefined;
  /** Each node's last ten minutes (GetNodeTelemetry), refreshed every 5 s. */
  declare history: Map<string, GpuTelemetrySeries[]>;

  constructor() {
    super();
    this.nodes = undefined;
    this.error = "";
    this.lastUpdate = undefined;
    this.history = new Map();
    new Poller(this, 1000, async () => {
      try {
        const res = await this.api.nodes.listNodes({ pageSize: 100 });
        this.nodes = res.nodes;
        this.error = "";
        this.lastUpdate = new Date();
      } catch (err) {
        this.error = (err as Error).message;
      }
    });
    new Poller(this, 5000, async () => {
      const nodes = this.nodes ?? (await this.api.nodes.listNodes({ pageSize: 100 })).nodes;
      const start = timestampFromDate(new Date(Date.now() - HISTORY_MS));
      const answers = await Promise.all(
        nodes.map((n) => this.api.telemetry.getNodeTelemetry({ nodeId: n.id, startTime: start, maxPoints: 120 }).then((r) => [n.id, r.series] as const, () => undefined)),
      );
      this.history = new Map(answers.filter((a) => a !== undefined));
    });
  }

  override render() {
    const nodes = this.nodes;
    const gpus = nodes?.reduce((n, node) => n + node.gpus.length, 0) ?? 0;
    const busy = nodes?.reduce((n, node) => n + node.gpus.length - node.freeGpuIndices.length, 0) ?? 0;
    return html`<h2>Overview</h2>
      <div class="row muted" style="margin-bottom:12px">
        <span>${nodes?.length ?? "…"} node${nodes?.length === 1 ? "" : "s"} online</span><span>${gpus} GPUs, ${busy} busy</span>
        <span>${this.lastUpdate ? `updated ${this.lastUpdate.toLocaleTimeString()}` : ""}</span>
        ${this.error ? html`<span class="error">${this.error}</span>` : ""}
      </div>
      ${nodes && nodes.length === 0 ? html`<div class="card muted">No nodes are online. Start a worker to add GPUs.</div>` : ""}
      <div class="grid">${(nodes ?? []).map((n) => this.node(n))}</div>`;
  }

  private chart(node: Node) {
    const series = this.history.get(node.id);
    if (!series || series.length === 0) return "";
    const { x, lines } = alignSeries(series, [{ label: "GPU", scale: "%", pick: (p) => p.utilizationPercent }]);
    return html`<ngpu-chart class="history" .x=${x} .series=${lines} .axes=${[{ scale: "%", label: "util % (10 min)", range: [0, 100] }]} .height=${130}></ngpu-chart>`;
  }

  private node(node: Node) {
    return html`<div class="card node" data-node=${node.id}>
      <div class="node-head">
        <strong>${node.name || node.id}</strong>
        <span class="muted">${NodeState[node.state]?.toLowerCase()} · ${node.runningTasks} running · reliability ${Math.round(node.reliability * 100)} %</span>
      </div>
      <div class="muted mono">${node.id}</div>
      ${this.chart(node)}
      ${node.gpuError ? html`<div class="error">${node.gpuError}</div>` : ""}
      ${node.gpus.map((gpu) => {
        const t = node.telemetry.find((r) => r.index === gpu.index);
        const total = t?.memoryTotalBytes ?? gpu.memoryTotalBytes;
        const vram = t?.memoryUsedBytes !== undefined && total ? (Number(t.memoryUsedBytes) / Number(total)) * 100 : undefined;
        return html`<div class="gpu" data-gpu=${gpu.index}>
          <div><div>${gpu.index}: ${gpu.model.replace(/^NVIDIA (GeForce )?/, "")}</div><div class="label">${node.freeGpuIndices.includes(gpu.index) ? "free" : "busy"}</div></div>
          <div><div class="label">GPU</div><div class="util">${percent(t?.utilizationPercent)}</div><div class="bar"><div style="width:${t?.utilizationPercent ?? 0}%"></div></div></div>
          <div><div class="label">VRAM</div><div>${bytes(t?.memoryUsedBytes)} / ${bytes(total)}</div><div class="bar"><div style="width:${vram ?? 0}%"></div></div></div>
          <div><div class="label">Temp</div><div class="temp">${t?.temperatureCelsius !== undefined ? `${Math.round(t.temperatureCelsius)} °C` : "–"}</div></div>
          <div><div class="label">Power</div><div class="power">${t?.powerDrawWatts !== undefined ? `${Math.round(t.powerDrawWatts)} W` : "–"}${t?.powerLimitWatts ? html`<span class="muted"> / ${Math.round(t.powerLimitWatts)} W</span>` : ""}</div></div>
        </div>`;
      })}
    </div>`;
  }
}
customElements.define("ngpu-overview-page", OverviewPage);
