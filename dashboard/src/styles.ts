import { css } from "lit";

/** Look shared by the dashboard's pages and the widgets (each in its own shadow root). */
export const shared = css`
  :host { display: block; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1c2330; }
  a { color: #2457d6; text-decoration: none; }
  a:hover { text-decoration: underline; }
  h2 { font-size: 18px; margin: 0 0 12px; }
  h3 { font-size: 15px; margin: 16px 0 8px; }
  .card { background: #fff; border: 1px solid #e1e4ea; border-radius: 8px; padding: 14px 16px; margin-bottom: 14px; }
  .muted { color: #6b7385; }
  .error { color: #b42318; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid #eef0f3; vertical-align: middle; }
  th { font-weight: 600; color: #6b7385; font-size: 12px; text-transform: uppercase; letter-spacing: 0.03em; }
  code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12.5px; }
  .badge { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 12px; font-weight: 600; background: #eef0f3; }
  .badge.queued { background: #eef0f3; color: #4a5263; }
  .badge.assigned, .badge.starting { background: #fff4d6; color: #8a5a00; }
  .badge.running { background: #dbe8ff; color: #1f4fc2; }
  .badge.succeeded { background: #dcf5e4; color: #17753a; }
  .badge.failed, .badge.timed.out, .badge.expired { background: #fde2e0; color: #b42318; }
  .badge.cancelled { background: #ececec; color: #555; }
  .bar { height: 8px; background: #eef0f3; border-radius: 4px; overflow: hidden; min-width: 80px; }
  .bar > div { height: 100%; background: #3b6fe0; transition: width 0.4s; }
  .row { display: flex; gap: 12px; align-items: center; flex-wrap: wrap; }
  input, select, button { font: inherit; padding: 5px 9px; border: 1px solid #cfd4dc; border-radius: 6px; background: #fff; }
  button { cursor: pointer; }
  button.primary { background: #2457d6; color: #fff; border-color: #2457d6; }
  .grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 14px; }
  .kv { display: grid; grid-template-columns: max-content 1fr; gap: 4px 14px; }
  .kv > :nth-child(odd) { color: #6b7385; }
`;

/** CSS class of a task state's badge, e.g. "running". */
export function stateClass(name: string): string {
  return `badge ${name}`;
}
