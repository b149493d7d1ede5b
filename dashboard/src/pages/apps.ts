import { css, html, LitElement } from "lit";
import type { App } from "../../../gen/ngpu/v1/app_pb.js";
import type { Node } from "../../../gen/ngpu/v1/node_pb.js";
import { PoolMemberState, type PoolStatus } from "../../../gen/ngpu/v1/pool_pb.js";
import type { Api } from "../api.js";
import { bytes, duration } from "../format.js";
import { Poller } from "../poll.js";
import { shared } from "../styles.js";

/** The workspace's apps, what GPUs they need, and their pools: policy, members and load (refreshed every 2 s). */
export class AppsPage extends LitElement {
  static override properties = { api: { attribute: false }, apps: { state: true }, nodes: { state: true }, pools: { state: true }, error: { state: true } };
  static override styles = [shared, css`.pool { font-size: 13px; } .member { white-space: nowrap; }`];
  declare api: Api;
  declare apps: App[] | undefined;
  declare nodes: Node[];
  declare pools: Map<string, PoolStatus>;
  declare error: string;

  constructor() {
    super();
    this.apps = undefined;
    this.nodes = [];
    this.pools = new Map();
    this.error = "";
    new Poller(this, 2000, async () => {
      try {
        const [apps, nodes] = await Promise.all([this.api.apps.listApps({ pageSize: 500 }), this.api.nodes.listNodes({ pageSize: 100 })]);
        const pooled = apps.apps.filter((a) => a.pool);
        const statuses = await Promise.all(pooled.map((a) => this.api.pools.getPoolStatus({ app: a.id }).then((r) => r.status, () => undefined)));
        this.pools = new Map(statuses.filter((s): s is PoolStatus => s !== undefined).map((s) => [s.appId, s]));
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
          <thead><tr><th>App</th><th>Version</th><th>Runtime</th><th>GPUs</th><th>Timeout</th><th>Pool</th><th></th></tr></thead>
          <tbody>
            ${(this.apps ?? []).map((app) => {
              const gpu = app.gpu;
              const runtime = app.runtime?.kind;
              return html`<tr data-app=${app.name}>
                <td><strong>${app.name}</strong><div class="muted mono">${app.id}</div></td>
                <td>v${app.version}</td>
                <td>${runtime?.case === "docker" ? runtime.value.image : runtime?.case === "process" ? runtime.value.command.join(" ") : runtime?.case === "builtin" ? `builtin ${runtime.value.name}` : "–"}</td>
                <td>${gpu?.count ?? 0}${gpu?.minMemoryBytes ? ` × ≥ ${bytes(gpu.minMemoryBytes)}` : ""}${gpu?.allowedModels.length ? html`<div class="muted">${gpu.allowedModels.join(", ")}</div>` : ""}</td>
                <td>${app.timeoutMs > 0n ? duration(app.timeoutMs) : html`<span class="muted">default</span>`}</td>
                <td class="pool">${this.pool(app)}</td>
                <td><a href="#/tasks?app=${encodeURIComponent(app.name)}">tasks →</a></td>
              </tr>`;
            })}
          </tbody>
        </table>
      </div>`;
  }

  private pool(app: App) {
    const status = this.pools.get(app.id);
    if (!app.pool || !status) {
      // No pool policy: the app runs on any node that fits, warm where it ran last.
      const warm = this.nodes.filter((n) => n.warmAppIds.includes(app.id));
      return html`<span class="muted">no pool</span>${warm.length ? html`<div>warm on ${warm.map((n) => n.name || n.id).join(", ")}</div>` : ""}`;
    }
    const p = app.pool;
    return html`<div>
        <strong>${status.warmNodes}</strong> warm (${status.busyNodes} busy), ${status.coldStartingNodes} starting, ${status.releasingNodes} leaving;
        wants ${status.desiredNodes} of ${p.minNodes}–${p.maxNodes}
      </div>
      <div class="muted">${status.queuedTasks} queued${status.oldestWaitMs > 0n ? ` (oldest ${duration(status.oldestWaitMs)})` : ""}, ${status.runningTasks} running${status.meanColdStartMs > 0n ? `, cold start ≈ ${duration(status.meanColdStartMs)}` : ""}</div>
      ${status.members.map(
        (m) => html`<div class="member">${m.nodeName || m.nodeId}: ${PoolMemberState[m.state]?.toLowerCase().replace("_", " ")}${m.runningTasks ? `, ${m.runningTasks} running` : ""}</div>`,
      )}`;
  }
}
customElements.define("ngpu-apps-page", AppsPage);
