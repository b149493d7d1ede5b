import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestNetwork, type TestNetwork } from "../helpers/network.js";
import { recordInBatches, seedApp, seedEndedAttempts, seedNode } from "../helpers/usage-fixtures.js";
import { type CliResult, runCli } from "../helpers/cli.js";


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
    // One attempt of each unsuccessful outcome on 12 March.
    for (const [i, outcome] of ["FAILED", "CANCELLED", "TIMED_OUT"].entries()) {
      const firstStart = new Date(Date.UTC(2026, 2, 12, i));
      await recordInBatches(net.cp.db, await seedEndedAttempts(net.cp.db, { workspaceId: net.workspaceId, appId: app, nodeId: node, count: 1, firstStart, spacingMs: 0, executionMs: 1_000, outcome }));
    }
  });
  afterAll(async () => {
    await net?.close();
  });

  const ngpu = (args: string[]) => runCli(args, { connection: net });

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

  it("shows each outcome in its own column, apps by name, and a published app's fee", async () => {
    const range = ["--from", "2026-03-12", "--to", "2026-03-13"];
    const byOutcome = await ngpu(["usage", "summary", ...range, "--group", "outcome"]);
    expect(byOutcome.code).toBe(0);
    const [header, ...rows] = byOutcome.stdout.trim().split("\n").map((l) => l.trim().split(/\s{2,}/));
    expect(header).toEqual(["start", "outcome", "submitted", "succeeded", "failed", "cancelled", "timed_out", "lost", "released", "GPU s", "USD"]);
    const column = (row: string[] | undefined, name: string) => row?.[header!.indexOf(name)];
    const row = (outcome: string) => rows.find((r) => r[1] === outcome);
    expect([column(row("FAILED"), "failed"), column(row("FAILED"), "cancelled")]).toEqual(["1", "0"]);
    expect([column(row("CANCELLED"), "failed"), column(row("CANCELLED"), "cancelled")]).toEqual(["0", "1"]);
    expect([column(row("TIMED_OUT"), "failed"), column(row("TIMED_OUT"), "timed_out")]).toEqual(["0", "1"]);
    const [, ...sums] = rows.find((r) => r[0] === "total")!;
    const total = ["total", "", ...sums]; // its group column is blank
    expect([column(total, "failed"), column(total, "cancelled"), column(total, "timed_out")]).toEqual(["1", "1", "1"]);
    const byApp = await ngpu(["usage", "summary", ...range, "--group", "app"]);
    expect(byApp.stdout).toMatch(/\sstyles\s/);
    expect(byApp.stdout).not.toMatch(/app_[0-9a-z]{26}/);
    const json = await ngpu(["--json", "usage", "summary", ...range, "--group", "app"]);
    expect(json.stdout).toMatch(/"key": ?"app_[0-9a-z]{26}"/);
    expect((await ngpu(["apps", "get", "styles"])).stdout).toMatch(/published:\s+no/);
    expect((await ngpu(["apps", "publish", "styles", "--fee-usd", "0.002"])).code).toBe(0);
    const shown = (await ngpu(["apps", "get", "styles"])).stdout;
    expect(shown).toMatch(/published:\s+yes/);
    expect(shown).toMatch(/fee per call:\s+0\.002 USD/);
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

  it("makes an enrollment token through the API with the operator's key (no DATABASE_URL needed)", async () => {
    const r = await ngpu(["keys", "enrollment-token", "--uses", "2", "--expires", "24h"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toMatch(/^enr_\S+$/);
    expect(r.stderr).toContain("2 uses");
  });
});
