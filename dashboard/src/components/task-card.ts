import { Code, ConnectError } from "@connectrpc/connect";
import { css, html, LitElement } from "lit";
import type { Progress, Task } from "../../../gen/ngpu/v1/task_pb.js";
import type { Api } from "../api.js";
import { duration, isTerminal, stateName } from "../format.js";
import { shared, stateClass } from "../styles.js";

/**
 * A task with its live state and progress (the WatchTask stream, re-opened when it
 * drops). Give it `.api`; the embeddable `<ngpu-task-card>` builds one from its token.
 */
export class NgpuTaskCardView extends LitElement {
  static override properties = { api: { attribute: false }, taskId: { attribute: "task-id" }, task: { state: true }, progress: { state: true }, error: { state: true } };
  static override styles = [
    shared,
    css`
      .card { margin: 0; min-width: 260px; }
      .top { display: flex; justify-content: space-between; gap: 10px; align-items: center; }
      .bar { margin: 10px 0 4px; }
      .meta { font-size: 12px; color: #6b7385; display: flex; justify-content: space-between; gap: 10px; }
    `,
  ];
  declare api: Api | undefined;
  declare taskId: string;
  declare task: Task | undefined;
  declare progress: Progress | undefined;
  declare error: string;
  private watch: AbortController | undefined;
  private following = "";

  constructor() {
    super();
    this.api = undefined;
    this.taskId = "";
    this.task = undefined;
    this.progress = undefined;
    this.error = "";
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.watch?.abort();
    this.watch = undefined;
    this.following = "";
  }

  protected override updated(): void {
    const key = this.api && this.taskId ? `${this.api.baseUrl} ${this.taskId}` : "";
    if (key === this.following) return;
    this.watch?.abort();
    this.following = key;
    if (!key || !this.api) return;
    const watch = new AbortController();
    this.watch = watch;
    void this.follow(this.api, this.taskId, watch.signal);
  }

  private async follow(api: Api, taskId: string, signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        for await (const res of api.tasks.watchTask({ taskId }, { signal })) {
          const e = res.event;
          if (e.case === "task") {
            this.task = e.value;
            if (e.value.progress) this.progress = e.value.progress;
          } else if (e.case === "progress") {
            this.progress = e.value;
          }
          this.error = "";
        }
        if (this.task && isTerminal(this.task.state)) return;
      } catch (err) {
        if (signal.aborted) return;
        const e = ConnectError.from(err);
        if (e.code === Code.NotFound || e.code === Code.Unauthenticated || e.code === Code.PermissionDenied || e.code === Code.InvalidArgument) {
          this.error = e.code === Code.NotFound ? "Task not found." : e.code === Code.InvalidArgument ? e.rawMessage : "This token cannot show the task.";
          return;
        }
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  }

  override render() {
    if (this.error) return html`<div class="card"><span class="error" part="error">${this.error}</span></div>`;
    const t = this.task;
    if (!t) return html`<div class="card muted">Loading task…</div>`;
    const name = stateName(t.state);
    const p = this.progress;
    return html`<div class="card" part="card">
      <div class="top"><strong>${t.appName}</strong><span class=${stateClass(name)} part="state" data-state=${name}>${name}</span></div>
      <div class="bar"><div style="width:${p?.percent ?? (t.state === 5 ? 100 : 0)}%"></div></div>
      <div class="meta"><span part="progress" data-percent=${p ? Math.round(p.percent) : 0}>${p ? `${Math.round(p.percent)} %` : ""} ${p?.message ?? ""}</span><span>${t.executionMs > 0n ? duration(t.executionMs) : ""}</span></div>
      ${t.error ? html`<div class="error">${t.error}</div>` : ""}
    </div>`;
  }
}
customElements.define("ngpu-task-card-view", NgpuTaskCardView);
