import { css, html, LitElement } from "lit";
import type { Api } from "../api.js";
import "../components/usage-chart.js";
import { shared } from "../styles.js";

function zones(): string[] {
  const all = (Intl as unknown as { supportedValuesOf?: (k: string) => string[] }).supportedValuesOf?.("timeZone") ?? [];
  return all.includes("UTC") ? all : ["UTC", ...all];
}

/** Usage: tasks, GPU-seconds and cost per hour or day, by app or GPU model, in a chosen time zone. */
export class UsagePage extends LitElement {
  static override properties = { api: { attribute: false }, timeZone: { state: true }, granularity: { state: true }, groupBy: { state: true }, days: { state: true } };
  static override styles = [shared, css`.controls { margin-bottom: 12px; }`];
  declare api: Api;
  declare timeZone: string;
  declare granularity: "hour" | "day";
  declare groupBy: "" | "app" | "gpu-model";
  declare days: number;

  constructor() {
    super();
    this.timeZone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    this.granularity = "hour";
    this.groupBy = "app";
    this.days = 2;
  }

  override render() {
    const chart = (metric: string) =>
      html`<div class="card"><ngpu-usage-chart-view .api=${this.api} metric=${metric} granularity=${this.granularity} group-by=${this.groupBy} time-zone=${this.timeZone} days=${this.days}></ngpu-usage-chart-view></div>`;
    return html`<h2>Usage</h2>
      <div class="row controls">
        <label>Time zone <select id="tz" @change=${(e: Event) => (this.timeZone = (e.target as HTMLSelectElement).value)}>
          ${zones().map((z) => html`<option ?selected=${z === this.timeZone}>${z}</option>`)}
        </select></label>
        <label>Per <select id="granularity" @change=${(e: Event) => {
          this.granularity = (e.target as HTMLSelectElement).value as "hour" | "day";
          this.days = this.granularity === "hour" ? 2 : 30;
        }}>
          <option value="hour" selected>hour (last 2 days)</option><option value="day">day (last 30 days)</option>
        </select></label>
        <label>By <select id="group" @change=${(e: Event) => (this.groupBy = (e.target as HTMLSelectElement).value as "" | "app" | "gpu-model")}>
          <option value="app" selected>app</option><option value="gpu-model">GPU model</option><option value="">total</option>
        </select></label>
      </div>
      ${chart("tasks")} ${chart("gpu-seconds")} ${chart("cost")}`;
  }
}
customElements.define("ngpu-usage-page", UsagePage);
