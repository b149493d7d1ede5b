import { existsSync, mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { type Browser, chromium } from "playwright-core";

/** Debian's chromium; CI installs it (.ci/run) when it is missing. */
export const CHROMIUM_PATH = process.env.NGPU_CHROMIUM ?? "/usr/bin/chromium";
/** Screenshots of browser tests (git-ignored), kept as test artifacts. */
export const ARTIFACTS_DIR = resolve(import.meta.dirname, "../../test-artifacts");

/** A headless Chromium with the flags that work on a machine without a display or GPU. */
export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) throw new Error(`no Chromium at ${CHROMIUM_PATH}: apt-get install -y chromium (or set NGPU_CHROMIUM)`);
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync"],
  });
}

/** Where to save a screenshot named `name` (the folder is made if needed). */
export function artifact(name: string): string {
  mkdirSync(ARTIFACTS_DIR, { recursive: true });
  return join(ARTIFACTS_DIR, name);
}

/**
 * Samples `read` every 50 ms until `done` holds for a sample (or timeoutMs passes) and
 * returns every distinct sample seen, in order: what a person watching the page saw change.
 */
export async function watchValues<T>(read: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 30_000): Promise<T[]> {
  const seen: T[] = [];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let value: T | undefined;
    try {
      value = await read();
    } catch {
      value = undefined;
    }
    if (value !== undefined && JSON.stringify(value) !== JSON.stringify(seen[seen.length - 1])) seen.push(value);
    if (value !== undefined && done(value)) return seen;
    if (Date.now() > deadline) throw new Error(`timed out; saw ${JSON.stringify(seen)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
