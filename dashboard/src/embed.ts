// Embeddable widgets, served as one script (/embed.js). A page adds
//   <script src="https://cp.example/embed.js"></script>
//   <ngpu-task-card task-id="tsk_…" token="…"></ngpu-task-card>
//   <ngpu-usage-chart token="…" metric="cost" days="7"></ngpu-usage-chart>
// The token should be a widget-scoped, expiring API key (`ngpu keys create --scope widget --app …`): it is
// visible to anyone who can see the page, and a widget key shows only its apps' task states, progress and
// usage (never inputs, outputs or the rest of the workspace).
// The API is the origin this script came from, unless an element says otherwise with `api="…"`.
import { type Api, createApi } from "./api.js";
import { NgpuTaskCardView } from "./components/task-card.js";
import { NgpuUsageChart } from "./components/usage-chart.js";

const scriptOrigin = (() => {
  const src = (document.currentScript as HTMLScriptElement | null)?.src;
  return src ? new URL(src).origin : location.origin;
})();

/** The API client for an element's `token` and `api` attributes (one per pair, shared). */
const clients = new Map<string, Api>();
function apiFor(element: HTMLElement): Api | undefined {
  const token = element.getAttribute("token");
  if (!token) return undefined;
  const base = element.getAttribute("api") || scriptOrigin;
  const key = `${base} ${token}`;
  let api = clients.get(key);
  if (!api) {
    api = createApi(base, token);
    clients.set(key, api);
  }
  return api;
}

class NgpuTaskCard extends NgpuTaskCardView {
  static override properties = { ...NgpuTaskCardView.properties, token: {}, apiUrl: { attribute: "api" } };
  declare token: string;
  declare apiUrl: string;
  protected override willUpdate(): void {
    this.api = apiFor(this);
  }
}

class NgpuUsageChartWidget extends NgpuUsageChart {
  static override properties = { ...NgpuUsageChart.properties, token: {}, apiUrl: { attribute: "api" } };
  declare token: string;
  declare apiUrl: string;
  protected override willUpdate(): void {
    this.api = apiFor(this);
  }
}

if (!customElements.get("ngpu-task-card")) customElements.define("ngpu-task-card", NgpuTaskCard);
if (!customElements.get("ngpu-usage-chart")) customElements.define("ngpu-usage-chart", NgpuUsageChartWidget);
