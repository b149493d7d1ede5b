import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestNetwork, type TestNetwork } from "../helpers/network.js";
import { recordInBatches, seedApp, seedEndedAttempts, seedNode } from "../helpers/usage-fixtures.js";

const repoRoot = fileURLToPath(new URL("../..", import.meta.url));

/** `ngpu usage …` and `ngpu prices …` as a user runs them, against a real control plane. */
describe("metering: CLI", () => {
  let net: TestNetwork;

  beforeAll(async () => {
    net = await startTestNetwork();
    const app = await seedApp(net.cp.db, net.workspaceId, { name: "styles" });
    const node = await seedNode(net.cp.db);
    await recordInBatches(
      net.cp.db,
      await seedEndedAttempts(net.cp.db, { workspaceId: net.workspaceId, appId: app, nodeId: node, count: 4 * 24 * 3, firstStart: new Date("2026-03-07T00:00:00Z"), spacingMs: 15 * 60_000, executionMs: 10_000 }),
    );
  });
  afterAll(async () => {
    await net?.close();
  });

  function ngpu(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("NGPU_")));
    const child = spawn(process.execPath, ["--import", "tsx", "cli/main.ts", "--url", net.url, "--api-key", net.apiKey, ...args], { cwd: repoRoot, env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => (stdout += c));
    child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
    return new Promise((resolve, reject) => {
      child.on("error", reject);
      child.on("close", (code) => resolve({ code, stdout, stderr }));
    });
  }

  it("estimates the brief's example", async () => {
    const r = await ngpu(["usage", "estimate", "--gpu", "NVIDIA GeForce RTX 3090", "--seconds", "10", "--tasks", "3000", "--reserved-monthly-usd", "272.88"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("10.98 USD/month");
    expect(r.stdout).toContain("74,557 tasks/month");
  });

  it("summarises a New York spring-forward day in 23 local hours, and exports CSV", async () => {
    const r = await ngpu(["usage", "summary", "--tz", "America/New_York", "--by", "hour", "--from", "2026-03-08", "--to", "2026-03-09"]);
    expect(r.code).toBe(0);
    const rows = r.stdout.trim().split("\n");
    // header + 23 hours + total
    expect(rows).toHaveLength(25);
    expect(rows[1]).toContain("2026-03-08T00:00:00-05:00");
    expect(rows[3]).toContain("2026-03-08T03:00:00-04:00");
    const csv = await ngpu(["usage", "export", "--from", "2026-03-07T00:00:00Z", "--to", "2026-03-10T00:00:00Z"]);
    expect(csv.code).toBe(0);
    const lines = csv.stdout.trimEnd().split("\r\n");
    expect(lines).toHaveLength(1 + 4 * 24 * 3);
    expect(lines[0]).toMatch(/^attempt_id,task_id,/);
  });

  it("fails clearly on a bad zone and sets prices as the operator", async () => {
    const bad = await ngpu(["usage", "summary", "--tz", "Mars/Olympus", "--from", "2026-03-08T00:00:00Z"]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/time_zone|--tz/);
    const set = await ngpu(["prices", "set", "NVIDIA Test CLI", "0.0005"]);
    expect(set.code).toBe(0);
    const list = await ngpu(["prices", "list"]);
    expect(list.stdout).toMatch(/NVIDIA Test CLI\s+0\.0005\b/);
  });
});
