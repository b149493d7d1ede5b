import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { css, html, LitElement, nothing } from "lit";
import type { Progress, Task } from "../../../gen/ngpu/v1/task_pb.js";
import type { GpuTelemetrySeries } from "../../../gen/ngpu/v1/telemetry_pb.js";
import type { TaskCost } from "../../../gen/ngpu/v1/usage_pb.js";
import { type WebhookDelivery, WebhookDeliveryState } from "../../../gen/ngpu/v1/webhook_pb.js";
import type { Api } from "../api.js";
import "../components/chart.js";
import { dateTime, duration, isTerminal, ms, stateName, time, usd } from "../format.js";
import { shared, stateClass } from "../styles.js";
import { alignSeries } from "../telemetry-series.js";

/**
 * One task: live state and progress (WatchTask stream), its timeline, every attempt and
 * node, the GPU telemetry of its attempts as charts, its itemised cost and webhook deliveries.
 */
export class TaskPage extends LitElement {
  static override properties = {
    api: { attribute: false },
    taskId: { attribute: "task-id" },
    task: { state: true },
    progress: { state: true },
    telemetry: { state: true },
    cost: { state: true },
    costNote: { state: true },
    deliveries: { state: true },
    error: { state: true },
  };
  static override styles = [
    shared,
    css`
      .timeline { display: flex; gap: 0; margin: 8px 0 4px; }
      .step { flex: 1; padding: 8px 10px; border-top: 4px solid #dfe3ea; }
      .step.done { border-color: #3b6fe0; }
      .step.current { border-color: #e0a33b; }
      .step .t { font-size: 12px; color: #6b7385; }
      .head { display: flex; gap: 14px; align-items: center; flex-wrap: wrap; }
      .progress { display: flex; gap: 10px; align-items: center; margin-top: 8px; }
      .progress .bar { flex: 1; max-width: 420px; }
    `,
  ];
  declare api: Api;
  declare taskId: string;
  declare task: Task | undefined;
  declare progress: Progress | undefined;
  declare telemetry: GpuTelemetrySeries[];
  declare cost: TaskCost | undefined;
  declare costNote: string;
  declare deliveries: WebhookDelivery[];
  declare error: string;
  private watch: AbortController | undefined;
  private timer: ReturnType<typeof setInterval> | undefined;

  constructor() {
    super();
    this.taskId = "";
    this.task = undefined;
    this.progress = undefined;
    this.telemetry = [];
    this.cost = undefined;
    this.costNote = "";
    this.deliveries = [];
    this.error = "";
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.stop();
  }

  override connectedCallback(): void {
    super.connectedCallback();
    if (this.taskId && !this.watch) this.start();
  }

  protected override willUpdate(changed: Map<string, unknown>): void {
    if (changed.has("taskId") && this.isConnected) this.start();
  }

  private stop(): void {
    this.watch?.abort();
    this.watch = undefined;
    clearInterval(this.timer);
  }

  private start(): void {
    this.stop();
    this.task = undefined;
    this.progress = undefined;
    this.telemetry = [];
    this.cost = undefined;
    const watch = new AbortController();
    this.watch = watch;
    void this.follow(watch.signal);
    // Telemetry, cost and deliveries are not in the stream: refresh them while the page is open.
    this.timer = setInterval(() => void this.refreshSide(), 2000);
    void this.refreshSide();
  }

  /** The WatchTask stream, re-opened if it drops before the task ends. */
  private async follow(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        await this.reload();
        for await (const res of this.api.tasks.watchTask({ taskId: this.taskId }, { signal })) {
          const e = res.event;
          if (e.case === "task") {
            this.task = { ...e.value, attempts: this.task?.attempts ?? [] } as Task;
            this.progress = e.value.progress ?? this.progress;
            // A state change: the attempts list and timeline may have moved too.
            await this.reload();
          } else if (e.case === "progress") {
            this.progress = e.value;
          }
        }
        if (this.task && isTerminal(this.task.state)) {
          await this.reload();
          await this.refreshSide();
          return;
        }
      } catch (err) {
        if (signal.aborted) return;
        const e = ConnectError.from(err);
        if (e.code === Code.NotFound || e.code === Code.InvalidArgument) {
          this.error = e.rawMessage;
          return;
        }
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  }

  private async reload(): Promise<void> {
    const { task } = await this.api.tasks.getTask({ taskId: this.taskId });
    this.task = task;
    if (task?.progress) this.progress = task.progress;
    this.error = "";
  }

  private async refreshSide(): Promise<void> {
    const id = this.taskId;
    const [telemetry, cost, deliveries] = await Promise.allSettled([
      this.api.telemetry.getTaskTelemetry({ taskId: id, maxPoints: 300 }),
      this.api.usage.getTaskCost({ taskId: id }),
      this.api.webhooks.listWebhookDeliveries({ taskId: id, pageSize: 50 }),
    ]);
    if (id !== this.taskId) return;
    if (telemetry.status === "fulfilled") this.telemetry = telemetry.value.series;
    if (cost.status === "fulfilled") {
      this.cost = cost.value.cost;
      this.costNote = "";
    } else {
      const e = ConnectError.from(cost.reason);
      this.costNote = e.code === Code.Unimplemented ? "Metering is not enabled on this control plane." : e.rawMessage;
    }
    if (deliveries.status === "fulfilled") this.deliveries = deliveries.value.deliveries;
    if (this.task && isTerminal(this.task.state) && telemetry.status === "fulfilled" && cost.status === "fulfilled") clearInterval(this.timer);
  }

  private async cancel(): Promise<void> {
    const { task } = await this.api.tasks.cancelTask({ taskId: this.taskId });
    if (task) this.task = { ...task, attempts: this.task?.attempts ?? [] } as Task;
  }

  private async replay(id: string): Promise<void> {
    await this.api.webhooks.replayWebhookDelivery({ deliveryId: id });
    await this.refreshSide();
  }

  override render() {
    if (this.error) return html`<h2>Task ${this.taskId}</h2><p class="error">${this.error}</p>`;
    const t = this.task;
    if (!t) return html`<h2>Task ${this.taskId}</h2><p class="muted">Loading…</p>`;
    const name = stateName(t.state);
    const p = this.progress;
    return html`<p><a href="#/tasks">← tasks</a></p>
      <div class="card">
        <div class="head">
          <h2 style="margin:0" class="mono">${t.id}</h2>
          <span class=${stateClass(name)} id="state" data-state=${name}>${name}</span>
          <span>app <strong>${t.appName}</strong></span>
          ${isTerminal(t.state) ? nothing : html`<button @click=${this.cancel}>Cancel</button>`}
        </div>
        <div class="progress">
          <div class="bar"><div id="progress-bar" style="width:${p?.percent ?? 0}%"></div></div>
          <span id="progress" data-percent=${p ? Math.round(p.percent) : 0}>${p ? `${Math.round(p.percent)} %` : "no progress yet"}</span>
          <span class="muted">${p?.message ?? ""}</span>
        </div>
        ${t.error ? html`<p class="error">${t.error}</p>` : ""}
        ${t.queueReason ? html`<p class="muted">${t.queueReason}</p>` : ""}
        ${this.timeline(t)}
      </div>
      <div class="card">
        <h3 style="margin-top:0">GPU telemetry during the task</h3>
        ${this.charts()}
      </div>
      <div class="card">
        <h3 style="margin-top:0">Attempts</h3>
        <table>
          <thead><tr><th>#</th><th>Attempt</th><th>Node</th><th>GPUs</th><th>State</th><th>Assigned</th><th>Started</th><th>Ended</th><th>Cold start</th><th>GPU time</th><th>Error</th></tr></thead>
          <tbody>
            ${t.attempts.map(
              (a, i) => html`<tr class="attempt">
                <td>${i + 1}</td><td class="mono">${a.id}</td><td class="mono">${a.nodeId}</td><td>${a.gpuIndices.join(", ")}</td>
                <td>${a.state.toLowerCase()}</td><td>${time(a.createTime)}</td><td>${time(a.startTime)}</td><td>${time(a.endTime)}</td>
                <td>${duration(a.coldStartMs)}</td><td>${duration(a.gpuMs)}</td><td class="error">${a.error}</td>
              </tr>`,
            )}
          </tbody>
        </table>
      </div>
      <div class="card" id="cost">
        <h3 style="margin-top:0">Cost</h3>
        ${this.costView()}
      </div>
      ${this.deliveries.length > 0 ? this.webhookView() : ""}`;
  }

  private timeline(t: Task) {
    const created = ms(t.createTime);
    const assigned = ms(t.assignTime);
    const started = ms(t.startTime);
    const ended = ms(t.endTime);
    const coldStart = Number(t.coldStartMs);
    const steps = [
      { label: "Queued", at: t.createTime, done: created !== undefined, note: `waited ${duration(t.queueMs)}` },
      { label: "Assigned", at: t.assignTime, done: assigned !== undefined, note: t.nodeId ? `on ${t.nodeId}` : "" },
      { label: "Cold start", at: undefined, done: started !== undefined || (assigned !== undefined && coldStart > 0), note: coldStart > 0 ? duration(coldStart) : started !== undefined ? "warm" : "" },
      { label: "Running", at: t.startTime, done: started !== undefined, note: t.executionMs > 0n ? `ran ${duration(t.executionMs)}` : "" },
      { label: isTerminal(t.state) ? stateName(t.state) : "Done", at: t.endTime, done: ended !== undefined, note: ended !== undefined && created !== undefined ? `total ${duration(ended - created)}` : "" },
    ];
    const current = steps.findIndex((s) => !s.done);
    return html`<div class="timeline" id="timeline">
      ${steps.map(
        (s, i) => html`<div class="step ${s.done ? "done" : i === current ? "current" : ""}">
          <div><strong>${s.label}</strong></div>
          <div class="t">${s.at ? dateTime(s.at) : ""}</div>
          <div class="t">${s.note}</div>
        </div>`,
      )}
    </div>`;
  }

  private charts() {
    if (this.telemetry.length === 0 || this.telemetry.every((s) => s.points.length === 0)) {
      return html`<p class="muted">${this.task?.attempts.length ? "No GPU readings for this task yet." : "The task has not run on a GPU yet."}</p>`;
    }
    const load = alignSeries(this.telemetry, [
      { label: "GPU %", scale: "%", pick: (p) => p.utilizationPercent },
      { label: "VRAM %", scale: "%", pick: (p) => (p.memoryUsedBytes !== undefined && p.memoryTotalBytes ? (Number(p.memoryUsedBytes) / Number(p.memoryTotalBytes)) * 100 : undefined) },
    ]);
    const heat = alignSeries(this.telemetry, [
      { label: "Power W", scale: "W", pick: (p) => p.powerDrawWatts },
      { label: "Temp °C", scale: "C", pick: (p) => p.temperatureCelsius },
    ]);
    return html`<ngpu-chart id="telemetry-chart" .x=${load.x} .series=${load.lines} .axes=${[{ scale: "%", label: "utilisation %", range: [0, 100] }]}></ngpu-chart>
      <ngpu-chart .x=${heat.x} .series=${heat.lines} .axes=${[{ scale: "W", label: "power (W)" }, { scale: "C", label: "°C", side: "right" }]} .height=${180}></ngpu-chart>`;
  }

  private costView() {
    const c = this.cost;
    if (!c) return html`<p class="muted">${this.costNote || "Loading…"}</p>`;
    return html`<div class="kv">
        <span>Queue (not billed)</span><span>${duration(c.queueMs)}</span>
        <span>Cold start (not billed)</span><span>${duration(c.coldStartMs)}</span>
        <span>Execution</span><span>${duration(c.executionMs)}</span>
        <span>GPU time</span><span>${duration(c.gpuMs)}</span>
        <span>GPU cost</span><span>${usd(c.costNanoUsd)}</span>
        <span>App fee</span><span>${usd(c.feeNanoUsd)}</span>
        <span><strong>Total</strong></span><span id="cost-total"><strong>${usd(c.totalNanoUsd)}</strong></span>
      </div>
      ${c.attempts.length > 0
        ? html`<table style="margin-top:10px">
            <thead><tr><th>Attempt</th><th>GPU</th><th>Outcome</th><th>Execution</th><th>Price / GPU-s</th><th>Cost</th></tr></thead>
            <tbody>
              ${c.attempts.map(
                (a) => html`<tr><td class="mono">${a.attemptId}</td><td>${a.gpuCount} × ${a.gpuModel}</td><td>${a.outcome.toLowerCase()}</td><td>${duration(a.executionMs)}</td><td>${usd(a.priceNanoUsdPerGpuSecond, 9)}</td><td>${usd(a.totalNanoUsd)}</td></tr>`,
              )}
            </tbody>
          </table>`
        : ""}`;
  }

  private webhookView() {
    return html`<div class="card">
      <h3 style="margin-top:0">Webhook deliveries</h3>
      <table>
        <thead><tr><th>Event</th><th>State</th><th>Attempts</th><th>Last</th><th>Created</th><th></th></tr></thead>
        <tbody>
          ${this.deliveries.map(
            (d) => html`<tr>
              <td>${d.type}</td><td>${WebhookDeliveryState[d.state]?.toLowerCase()}</td><td>${d.attemptCount}</td>
              <td>${d.lastError || (d.lastStatusCode ? `HTTP ${d.lastStatusCode}` : "")}</td>
              <td>${d.createTime ? timestampDate(d.createTime).toLocaleTimeString() : ""}</td>
              <td><button @click=${() => this.replay(d.id)}>Replay</button></td>
            </tr>`,
          )}
        </tbody>
      </table>
    </div>`;
  }
}
customElements.define("ngpu-task-page", TaskPage);
