// Builds the dashboard (a single-page app) and the embeddable widgets into one folder the
// control plane serves: index.html, app.js (the dashboard) and embed.js (the widgets).
import { mkdirSync, readdirSync, renameSync, statSync, writeFileSync, copyFileSync, existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { gzipSync } from "node:zlib";

const ROOT = resolve(import.meta.dirname, "..");
/** Where the built dashboard goes (git-ignored). */
export const DASHBOARD_DIST_DIR = join(ROOT, "dist", "dashboard");
const SOURCE_DIRS = [join(ROOT, "dashboard"), join(ROOT, "gen")];

export interface BuiltFile {
  readonly name: string;
  readonly bytes: number;
  readonly gzipBytes: number;
}

/** Bundles and minifies both entry points with esbuild; writes each file atomically. */
export async function buildDashboard(outDir = DASHBOARD_DIST_DIR): Promise<BuiltFile[]> {
  // A dev dependency: loaded only when a build is needed.
  const esbuild = await import("esbuild");
  const result = await esbuild.build({
    entryPoints: { app: join(ROOT, "dashboard/src/app.ts"), embed: join(ROOT, "dashboard/src/embed.ts") },
    bundle: true,
    minify: process.env.NGPU_DASHBOARD_DEBUG !== "1",
    sourcemap: process.env.NGPU_DASHBOARD_DEBUG === "1" ? "inline" : false,
    // Classic scripts: embed.js works from a plain <script src> on any page (and can read document.currentScript).
    format: "iife",
    target: "es2022",
    platform: "browser",
    loader: { ".css": "text" },
    legalComments: "none",
    write: false,
    outdir: outDir,
    logLevel: "silent",
  });
  mkdirSync(outDir, { recursive: true });
  const files: BuiltFile[] = [];
  for (const file of result.outputFiles) {
    // Write beside, then rename: a control plane serving the folder never reads half a file.
    const temp = `${file.path}.${process.pid}.tmp`;
    writeFileSync(temp, file.contents);
    renameSync(temp, file.path);
    files.push({ name: file.path.slice(outDir.length + 1), bytes: file.contents.length, gzipBytes: gzipSync(file.contents).length });
  }
  const html = join(outDir, "index.html");
  copyFileSync(join(ROOT, "dashboard/index.html"), `${html}.${process.pid}.tmp`);
  renameSync(`${html}.${process.pid}.tmp`, html);
  return files;
}

function newestMtimeMs(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtimeMs(path) : statSync(path).mtimeMs);
  }
  return newest;
}

/**
 * Builds the dashboard when the output is missing or older than its sources (a
 * fresh clone, an edit). Without esbuild (a production install without dev
 * dependencies) an existing build is served as it is.
 */
export async function ensureDashboardBuilt(outDir = DASHBOARD_DIST_DIR): Promise<string> {
  const outputs = ["index.html", "app.js", "embed.js"].map((f) => join(outDir, f));
  const built = outputs.every((f) => existsSync(f));
  if (built) {
    const oldest = Math.min(...outputs.map((f) => statSync(f).mtimeMs));
    const stale = SOURCE_DIRS.some((d) => existsSync(d) && newestMtimeMs(d) > oldest);
    if (!stale) return outDir;
  }
  try {
    await buildDashboard(outDir);
  } catch (err) {
    if (!built) throw err;
  }
  return outDir;
}
