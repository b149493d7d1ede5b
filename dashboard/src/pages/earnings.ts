import { css, html, LitElement } from "lit";
import type { Api } from "../api.js";
import "../components/usage-chart.js";
import { shared } from "../styles.js";

/** Provider earnings: GPU time served on the workspace's nodes and what it earned, per day. */
export class EarningsPage extends LitElement {
  static override properties = { api: { attribute: false }, groupBy: { state: true } };
  static override styles = [shared, css``];
  declare api: Api;
  declare groupBy: "node" | "gpu-model";

  constructor() {
    super();
    this.groupBy = "node";
  }

  override render() {
    const tz = Intl.DateTimeFormat().resolvedOptions().timeZone;
    return html`<h2>Provider earnings</h2>
      <p class="muted">GPU time the network ran on nodes this workspace provides, and the providers' share of its cost.</p>
      <div class="row" style="margin-bottom:12px">
        <label>By <select @change=${(e: Event) => (this.groupBy = (e.target as HTMLSelectElement).value as "node" | "gpu-model")}>
          <option value="node" selected>node</option><option value="gpu-model">GPU model</option>
        </select></label>
      </div>
      <div class="card"><ngpu-usage-chart-view .api=${this.api} view="provider" metric="earnings" granularity="day" days="30" group-by=${this.groupBy} time-zone=${tz}></ngpu-usage-chart-view></div>
      <div class="card"><ngpu-usage-chart-view .api=${this.api} view="provider" metric="gpu-seconds" granularity="day" days="30" group-by=${this.groupBy} time-zone=${tz}></ngpu-usage-chart-view></div>`;
  }
}
customElements.define("ngpu-earnings-page", EarningsPage);
