import { css, html, LitElement } from "lit";
import type { App } from "../../../gen/ngpu/v1/app_pb.js";
import type { Node } from "../../../gen/ngpu/v1/node_pb.js";
import type { Api } from "../api.js";
import { bytes, duration } from "../format.js";
import { Poller } from "../poll.js";
import { shared } from "../styles.js";

/** The workspace's apps, what GPUs they need, and the nodes where each is warm (its pool). */
export class AppsPage extends LitElement {
  static override properties = { api: { attribute: false }, apps: { state: true }, nodes: { state: true }, error: { state: true } };
  static override styles = [shared, css``];
  declare api: Api;
  declare apps: App[] | undefined;
  declare nodes: Node[];
  declare error: string;

  constructor() {
    super();
    this.apps = undefined;
    this.nodes = [];
    this.error = "";
    new Poller(this, 2000, async () => {
      try {
        const [apps, nodes] = await Promise.all([this.api.apps.listApps({ pageSize: 500 }), this.api.nodes.listNodes({ pageSize: 100 })]);
        this.apps = apps.apps;
        this.nodes = nodes.nodes;
        this.error = "";
      } catch (err) {
        this.error = (err as Error).message;
      }
    });
  }

  override render() {
    return html`<h2>Apps & pools</h2>
      ${this.error ? html`<p class="error">${this.error}</p>` : ""}
      ${this.apps && this.apps.length === 0 ? html`<div class="card muted">No apps yet: deploy one with <code>ngpu apps deploy</code>.</div>` : ""}
      <div class="card">
        <table>
          <thead><tr><th>App</th><th>Version</th><th>Runtime</th><th>GPUs</th><th>Timeout</th><th>Warm on (pool)</th><th></th></tr></thead>
          <tbody>
            ${(this.apps ?? []).map((app) => {
              const warm = this.nodes.filter((n) => n.warmAppIds.includes(app.id));
              const gpu = app.gpu;
              const runtime = app.runtime?.kind;
              return html`<tr data-app=${app.name}>
                <td><strong>${app.name}</strong><div class="muted mono">${app.id}</div></td>
                <td>v${app.version}</td>
                <td>${runtime?.case === "docker" ? runtime.value.image : runtime?.case === "process" ? runtime.value.command.join(" ") : runtime?.case === "builtin" ? `builtin ${runtime.value.name}` : "–"}</td>
                <td>${gpu?.count ?? 0}${gpu?.minMemoryBytes ? ` × ≥ ${bytes(gpu.minMemoryBytes)}` : ""}${gpu?.allowedModels.length ? html`<div class="muted">${gpu.allowedModels.join(", ")}</div>` : ""}</td>
                <td>${duration(app.timeoutMs)}</td>
                <td>${warm.length === 0 ? html`<span class="muted">cold</span>` : warm.map((n) => html`<div>${n.name || n.id}</div>`)}</td>
                <td><a href="#/tasks?app=${encodeURIComponent(app.name)}">tasks →</a></td>
              </tr>`;
            })}
          </tbody>
        </table>
      </div>`;
  }
}
customElements.define("ngpu-apps-page", AppsPage);
