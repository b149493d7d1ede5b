import { timestampDate } from "@bufbuild/protobuf/wkt";
import { css, html, LitElement } from "lit";
import type { App } from "../../../gen/ngpu/v1/app_pb.js";
import { type Task, TaskState } from "../../../gen/ngpu/v1/task_pb.js";
import type { Api } from "../api.js";
import { duration, stateName, time } from "../format.js";
import { Poller } from "../poll.js";
import { shared, stateClass } from "../styles.js";

const STATES = [TaskState.QUEUED, TaskState.ASSIGNED, TaskState.STARTING, TaskState.RUNNING, TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED, TaskState.TIMED_OUT, TaskState.EXPIRED];

/**
 * Tasks, newest first, refreshed every second: filter by app and state; search by task id
 * (exact), by label (key=value), or by any part of the id or app name.
 */
export class TasksPage extends LitElement {
  static override properties = {
    api: { attribute: false },
    tasks: { state: true },
    apps: { state: true },
    app: { state: true },
    state: { state: true },
    search: { state: true },
    error: { state: true },
  };
  static override styles = [shared, css`.filters { margin-bottom: 12px; } .filters input { min-width: 260px; }`];
  declare api: Api;
  declare tasks: Task[] | undefined;
  declare apps: App[];
  declare app: string;
  declare state: string;
  declare search: string;
  declare error: string;
  private readonly poller: Poller;

  constructor() {
    super();
    const query = new URLSearchParams(location.hash.split("?")[1] ?? "");
    this.tasks = undefined;
    this.apps = [];
    this.app = query.get("app") ?? "";
    this.state = "";
    this.search = "";
    this.error = "";
    this.poller = new Poller(this, 1000, () => this.load());
  }

  private async load(): Promise<void> {
    try {
      if (this.apps.length === 0) this.apps = (await this.api.apps.listApps({ pageSize: 500 })).apps;
      const search = this.search.trim();
      const label = /^([^=\s]+)=(.*)$/.exec(search);
      if (/^tsk_[0-9a-z]+$/.test(search)) {
        const found = await this.api.tasks.getTask({ taskId: search }).then(
          (r) => (r.task ? [r.task] : []),
          () => [],
        );
        this.tasks = found;
      } else {
        const res = await this.api.tasks.listTasks({
          pageSize: 100,
          app: this.app,
          states: this.state ? [Number(this.state) as TaskState] : [],
          labels: label ? { [label[1]!]: label[2]! } : {},
        });
        const needle = label ? "" : search.toLowerCase();
        this.tasks = needle ? res.tasks.filter((t) => t.id.includes(needle) || t.appName.toLowerCase().includes(needle)) : res.tasks;
      }
      this.error = "";
    } catch (err) {
      this.error = (err as Error).message;
    }
  }

  private set(field: "app" | "state" | "search", value: string): void {
    this[field] = value;
    this.poller.now();
  }

  override render() {
    return html`<h2>Tasks</h2>
      <div class="row filters">
        <select aria-label="app" @change=${(e: Event) => this.set("app", (e.target as HTMLSelectElement).value)}>
          <option value="">all apps</option>
          ${this.apps.map((a) => html`<option value=${a.name} ?selected=${a.name === this.app}>${a.name}</option>`)}
        </select>
        <select aria-label="state" @change=${(e: Event) => this.set("state", (e.target as HTMLSelectElement).value)}>
          <option value="">all states</option>
          ${STATES.map((s) => html`<option value=${s}>${stateName(s)}</option>`)}
        </select>
        <input type="search" aria-label="search" placeholder="task id, label key=value, or text" @input=${(e: Event) => this.set("search", (e.target as HTMLInputElement).value)} />
        ${this.error ? html`<span class="error">${this.error}</span>` : ""}
      </div>
      <div class="card">
        ${this.tasks && this.tasks.length === 0 ? html`<p class="muted">No tasks match.</p>` : ""}
        <table>
          <thead><tr><th>Task</th><th>App</th><th>State</th><th>Progress</th><th>Node</th><th>Created</th><th>Queue</th><th>Run</th></tr></thead>
          <tbody>
            ${(this.tasks ?? []).map((t) => {
              const name = stateName(t.state);
              const runMs = t.executionMs > 0n ? t.executionMs : t.startTime && !t.endTime ? BigInt(Date.now() - timestampDate(t.startTime).getTime()) : undefined;
              return html`<tr data-task=${t.id}>
                <td><a class="mono" href="#/tasks/${t.id}">${t.id}</a></td>
                <td>${t.appName}</td>
                <td><span class=${stateClass(name)} data-state=${name}>${name}</span></td>
                <td style="min-width:120px"><div class="bar"><div style="width:${t.progress?.percent ?? 0}%"></div></div><span class="muted">${t.progress ? `${Math.round(t.progress.percent)} %` : ""}</span></td>
                <td class="mono">${t.nodeId || "–"}</td>
                <td>${time(t.createTime)}</td>
                <td>${duration(t.queueMs)}</td>
                <td>${runMs === undefined ? "–" : duration(runMs)}</td>
              </tr>`;
            })}
          </tbody>
        </table>
      </div>`;
  }
}
customElements.define("ngpu-tasks-page", TasksPage);
