// The dashboard: a small single-page app served by the control plane at "/".
import { ConnectError, Code } from "@connectrpc/connect";
import { html, LitElement, css } from "lit";
import { type Api, createApi } from "./api.js";
import { forgetKey, saveKey, savedKey } from "./session.js";
import { shared } from "./styles.js";
import "./pages/overview.js";
import "./pages/apps.js";
import "./pages/tasks.js";
import "./pages/task-detail.js";
import "./pages/usage.js";
import "./pages/earnings.js";

const PAGES = [
  ["overview", "Overview"],
  ["apps", "Apps & pools"],
  ["tasks", "Tasks"],
  ["usage", "Usage"],
  ["earnings", "Earnings"],
] as const;

/** The shell: sign-in, navigation, and the page the URL's hash names (#/tasks/tsk_…). */
export class NgpuApp extends LitElement {
  static override properties = { api: { state: true }, route: { state: true }, signInError: { state: true } };
  static override styles = [
    shared,
    css`
      header { display: flex; align-items: center; gap: 22px; padding: 10px 22px; background: #141a26; color: #fff; }
      header .brand { font-weight: 700; letter-spacing: 0.04em; }
      header nav a { color: #c9d3e6; margin-right: 16px; }
      header nav a.active { color: #fff; font-weight: 600; }
      header .spacer { flex: 1; }
      header button { background: transparent; color: #c9d3e6; border-color: #3a4457; }
      main { padding: 20px 22px; max-width: 1280px; }
      .signin { max-width: 420px; margin: 12vh auto; }
      .signin input { width: 100%; box-sizing: border-box; margin: 8px 0 12px; }
    `,
  ];
  declare api: Api | undefined;
  declare route: string[];
  declare signInError: string;
  private readonly onHash = () => (this.route = parseHash());

  constructor() {
    super();
    const key = savedKey();
    this.api = key ? this.connect(key) : undefined;
    this.route = parseHash();
    this.signInError = "";
  }

  override connectedCallback(): void {
    super.connectedCallback();
    addEventListener("hashchange", this.onHash);
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    removeEventListener("hashchange", this.onHash);
  }

  /** The API with this key; a key refused later (expired, revoked) signs the tab out. */
  private connect(key: string): Api {
    return createApi(location.origin, key, () => {
      if (!this.api) return;
      forgetKey();
      this.api = undefined;
      this.signInError = "Your key was refused (expired or revoked): sign in again.";
    });
  }

  private async signIn(event: SubmitEvent): Promise<void> {
    event.preventDefault();
    const key = (new FormData(event.target as HTMLFormElement).get("key") as string).trim();
    const api = this.connect(key);
    try {
      await api.apps.listApps({ pageSize: 1 });
      saveKey(key);
      this.signInError = "";
      this.api = api;
    } catch (err) {
      const e = ConnectError.from(err);
      this.signInError = e.code === Code.Unauthenticated ? "That key was refused." : e.rawMessage;
    }
  }

  private signOut(): void {
    forgetKey();
    this.api = undefined;
  }

  override render() {
    if (!this.api) {
      return html`<form class="card signin" @submit=${this.signIn}>
        <h2>Sign in to NGPU</h2>
        <label class="muted" for="key">API key (kept in this tab only)</label>
        <input id="key" name="key" type="password" autocomplete="off" required placeholder="key_…" />
        <button class="primary" type="submit">Sign in</button>
        ${this.signInError ? html`<p class="error">${this.signInError}</p>` : ""}
      </form>`;
    }
    const [page = "overview", id] = this.route;
    return html`<header>
        <span class="brand">NGPU</span>
        <nav>${PAGES.map(([p, label]) => html`<a class=${p === page ? "active" : ""} href="#/${p}">${label}</a>`)}</nav>
        <span class="spacer"></span>
        <button @click=${this.signOut}>Sign out</button>
      </header>
      <main>${this.page(this.api, page, id)}</main>`;
  }

  private page(api: Api, page: string, id: string | undefined) {
    switch (page) {
      case "apps":
        return html`<ngpu-apps-page .api=${api}></ngpu-apps-page>`;
      case "tasks":
        return id ? html`<ngpu-task-page .api=${api} task-id=${id}></ngpu-task-page>` : html`<ngpu-tasks-page .api=${api}></ngpu-tasks-page>`;
      case "usage":
        return html`<ngpu-usage-page .api=${api}></ngpu-usage-page>`;
      case "earnings":
        return html`<ngpu-earnings-page .api=${api}></ngpu-earnings-page>`;
      default:
        return html`<ngpu-overview-page .api=${api}></ngpu-overview-page>`;
    }
  }
}
customElements.define("ngpu-app", NgpuApp);

function parseHash(): string[] {
  return location.hash.replace(/^#\/?/, "").split("?")[0]!.split("/").filter(Boolean).map(decodeURIComponent);
}
