// Runs the whole suite with vitest and ends with the plain summary line CI reads:
// "N passed, N failed". Extra arguments go to vitest (e.g. a file filter).
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

interface VitestJson {
  numPassedTests: number;
  numFailedTests: number;
  numPendingTests: number;
  numTodoTests: number;
  numTotalTestSuites: number;
  numFailedTestSuites: number;
}

const dir = mkdtempSync(join(tmpdir(), "ngpu-test-"));
const report = join(dir, "report.json");
const child = spawn(
  process.execPath,
  ["node_modules/vitest/vitest.mjs", "run", "--reporter=default", "--reporter=json", `--outputFile.json=${report}`, ...process.argv.slice(2)],
  { stdio: "inherit" },
);
const code: number = await new Promise((resolve) => child.on("exit", (c, signal) => resolve(c ?? (signal ? 1 : 0))));
let summary: VitestJson | undefined;
try {
  summary = JSON.parse(readFileSync(report, "utf8")) as VitestJson;
} catch {
  summary = undefined;
}
rmSync(dir, { recursive: true, force: true });
if (!summary) {
  console.log("0 passed, 1 failed");
  process.exit(code === 0 ? 1 : code);
}
// A suite that failed to load counts as a failure even if it had no tests.
const failed = summary.numFailedTests + (summary.numFailedTests === 0 ? summary.numFailedTestSuites : 0);
const skipped = summary.numPendingTests + summary.numTodoTests;
console.log(`${summary.numPassedTests} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
process.exit(code !== 0 ? code : failed > 0 ? 1 : 0);
