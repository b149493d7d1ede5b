// Shared by the runtime tests: how to start the demo style app, and how to tell whether a
// process is still around.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { startProcessInstance, type ProcessInstance, type ProcessRuntimeOptions } from "../../../worker/runtime/process-runtime.js";

export const REPO_ROOT = fileURLToPath(new URL("../../../", import.meta.url));

/** argv that runs the demo app with the same Node as the tests. */
export const DEMO_APP_COMMAND = [process.execPath, "--import", "tsx", "examples/style-app/server.ts"];

/** Fast settings: short setup, short steps, every webhook sent (no 500 ms coalescing). */
export const FAST_DEMO_ENV = {
  STYLE_APP_SETUP_MS: "150",
  STYLE_APP_STEP_DELAY_MS: "25",
  STYLE_APP_WEBHOOK_INTERVAL_MS: "0",
};

export function startDemoApp(overrides: Partial<ProcessRuntimeOptions> = {}): Promise<ProcessInstance> {
  return startProcessInstance({
    command: DEMO_APP_COMMAND,
    cwd: REPO_ROOT,
    baseEnv: process.env,
    env: FAST_DEMO_ENV,
    gpuIndices: [],
    readyTimeoutMs: 30_000,
    stopGraceMs: 2_000,
    ...overrides,
  });
}

/** True while the process exists and is not a zombie waiting to be reaped. */
export function processAlive(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return false;
  }
  // Field 3, after the parenthesised command name (which may itself contain spaces).
  const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  return state !== "Z" && state !== "X";
}

/** Polls a condition (no fixed sleeps): resolves once it holds, rejects after `timeoutMs`. */
export async function waitUntil(condition: () => boolean, timeoutMs = 5_000, what = "condition"): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
