// Builds the worker into ONE executable file, dist/ngpu-worker: a Node single
// executable application (the worker bundled by esbuild into one CommonJS file,
// injected into a copy of this node binary). It runs with nothing beside it.
import { execFileSync } from "node:child_process";
import { chmodSync, copyFileSync, mkdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { build } from "esbuild";

const root = resolve(import.meta.dirname, "..");
// `--out PATH` builds elsewhere (tests build their own copy); default dist/ngpu-worker.
const outFlag = process.argv.indexOf("--out");
const exe = resolve(outFlag > 0 && process.argv[outFlag + 1] ? process.argv[outFlag + 1]! : join(root, "dist/ngpu-worker"));
const out = dirname(exe);
const work = join(out, `.worker-build-${process.pid}`);
rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });

const bundle = join(work, "worker.cjs");
await build({
  entryPoints: [join(root, "worker/bin.ts")],
  bundle: true,
  platform: "node",
  target: "node20",
  format: "cjs",
  outfile: bundle,
  minify: true,
  legalComments: "none",
  logLevel: "warning",
});

const blob = join(work, "sea-prep.blob");
const seaConfig = join(work, "sea-config.json");
writeFileSync(seaConfig, JSON.stringify({ main: bundle, output: blob, disableExperimentalSEAWarning: true, useCodeCache: true }));
execFileSync(process.execPath, ["--experimental-sea-config", seaConfig], { stdio: "inherit" });

rmSync(exe, { force: true });
copyFileSync(process.execPath, exe);
chmodSync(exe, 0o755);
// Strip before injecting: stripping afterwards corrupts the injected blob.
try {
  execFileSync("strip", [exe], { stdio: "ignore" });
} catch {
  // No strip on this machine: the binary is just bigger.
}
execFileSync(
  process.execPath,
  [join(root, "node_modules/postject/dist/cli.js"), exe, "NODE_SEA_BLOB", blob, "--sentinel-fuse", "NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2"],
  { stdio: "ignore" },
);
rmSync(work, { recursive: true, force: true });
console.log(`built ${exe} (${(statSync(exe).size / 1e6).toFixed(1)} MB)`);
