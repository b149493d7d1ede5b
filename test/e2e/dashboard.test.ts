import http from "node:http";
import type { AddressInfo } from "node:net";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEnrollmentToken } from "../../control-plane/db/credentials.js";
import type { NgpuClient } from "../../sdk/index.js";
import type { Worker } from "../../worker/worker.js";
import { artifact, launchBrowser, watchValues } from "../helpers/browser.js";
import { startTestNetwork, type TestNetwork } from "../helpers/network.js";
import { builtin, client } from "../helpers/sdk.js";
import { startTestWorker } from "../helpers/workers.js";

/** A plain page on another origin (its own port) that embeds a widget with one script tag. */
async function startEmbedPage(body: () => string) {
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(`<!doctype html><html><body><h1>My shop</h1>${body()}</body></html>`);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, close: () => new Promise<void>((r) => server.close(() => r())) };
}

describe("dashboard and widgets in a real browser", () => {
  let net: TestNetwork;
  let ngpu: NgpuClient;
  let worker: Worker;
  let browser: Browser;

  beforeAll(async () => {
    net = await startTestNetwork({ dashboard: true });
    ngpu = client(net.url, net.apiKey);
    // The workspace provides the node too, so it has provider earnings to show.
    const providerToken = await createEnrollmentToken(net.cp.db, { name: "own box", providerWorkspaceId: net.workspaceId });
    worker = await startTestWorker({ url: net.url, enrollmentToken: providerToken.token }, ["NVIDIA GeForce RTX 3090:24GiB:2"], { name: "gpu-box" });
    await ngpu.apps.deploy({ name: "sleeper", runtime: builtin("sleep"), gpu: { count: 1 } });
    browser = await launchBrowser();
  });
  afterAll(async () => {
    await browser?.close();
    await worker?.shutdown(0);
    await ngpu?.close();
    await net?.close();
  });

  async function signedIn(key: string): Promise<Page> {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(net.url);
    await page.fill("input[name=key]", key);
    await page.click("button[type=submit]");
    await page.locator("ngpu-overview-page").waitFor();
    return page;
  }

  it("signs in with an API key and shows the nodes' live GPU readings", async () => {
    const page = await browser.newPage();
    await page.goto(net.url);
    await page.fill("input[name=key]", "ngpu_not-a-key");
    await page.click("button[type=submit]");
    await page.getByText("That key was refused.").waitFor();
    await page.close();

    const dash = await signedIn(net.apiKey);
    const node = dash.locator(".node", { hasText: "gpu-box" });
    await node.waitFor();
    expect(await node.locator(".gpu").count()).toBe(2);
    // Readings arrive once a second; they show as numbers, and change while the page stays open.
    const temps = await watchValues(() => node.locator(".gpu .temp").first().textContent(), (v) => /°C/.test(v ?? ""), 15_000);
    expect(temps.at(-1)).toMatch(/^\d+ °C$/);
    await expect.poll(() => node.locator(".gpu .power").first().textContent(), { timeout: 10_000 }).toMatch(/\d+ W/);
    // And the last ten minutes of each GPU's utilisation, from the telemetry history.
    await node.locator("ngpu-chart.history canvas").waitFor({ timeout: 15_000 });
    expect(await node.locator("ngpu-chart.history .u-legend").textContent()).toContain("GPU 1");
    await dash.screenshot({ path: artifact("dashboard-overview.png"), fullPage: true });
    await dash.close();

    // A key revoked (or expired) while the tab is open signs it out.
    const brief = await ngpu.keys.create({ name: "brief", scope: "read-only" });
    const tab = await signedIn(brief.secret);
    await ngpu.keys.revoke(brief.key.id);
    await tab.getByText("Your key was refused (expired or revoked): sign in again.").waitFor({ timeout: 15_000 });
    expect(await tab.evaluate(() => sessionStorage.getItem("ngpu.apiKey"))).toBeNull();
    await tab.close();
  });

  it("shows a submitted task's state and progress change live, then its detail: timeline, attempts, telemetry chart and cost", { timeout: 120_000 }, async () => {
    const page = await signedIn(net.apiKey);
    await page.goto(`${net.url}/#/tasks`);
    await page.locator("ngpu-tasks-page table").waitFor();
    const { task } = await ngpu.tasks.submit({ app: "sleeper", input: { seconds: 4 }, labels: { order: "42" } });
    const row = page.locator(`tr[data-task="${task.id}"]`);
    const seen = await watchValues(
      async () => ({ state: await row.locator("[data-state]").getAttribute("data-state"), progress: await row.locator("td:nth-child(4) .muted").textContent() }),
      (v) => v.state === "succeeded",
      30_000,
    );
    const states = seen.map((s) => s.state);
    expect(states).toContain("running");
    expect(states.at(-1)).toBe("succeeded");
    // Progress moved while it ran, without a reload.
    const running = seen.filter((s) => s.state === "running" && s.progress).map((s) => parseInt(s.progress!, 10));
    expect(new Set(running).size).toBeGreaterThan(1);

    // Search by label finds it; another label does not.
    await page.fill("input[type=search]", "order=42");
    await expect.poll(() => page.locator("tr[data-task]").count()).toBe(1);
    await page.fill("input[type=search]", "order=43");
    await expect.poll(() => page.locator("tr[data-task]").count()).toBe(0);

    // A longer task, followed on its own page from the start.
    const { task: long } = await ngpu.tasks.submit({ app: "sleeper", input: { seconds: 4 } });
    await page.goto(`${net.url}/#/tasks/${long.id}`);
    const detail = await watchValues(
      async () => ({ state: await page.locator("#state").getAttribute("data-state"), percent: Number(await page.locator("#progress").getAttribute("data-percent")) }),
      (v) => v.state === "succeeded",
      30_000,
    );
    expect(detail.map((d) => d.state)).toContain("running");
    expect(new Set(detail.filter((d) => d.state === "running").map((d) => d.percent)).size).toBeGreaterThan(1);
    expect(detail.at(-1)!.percent).toBe(100);
    await expect.poll(() => page.locator("#timeline .step.done").count()).toBe(5);
    expect(await page.locator("tr.attempt").count()).toBe(1);
    expect(await page.locator("tr.attempt").textContent()).toContain(worker.nodeId());
    // The GPU's readings during the task, drawn by uPlot.
    await page.locator("#telemetry-chart canvas").waitFor({ timeout: 15_000 });
    await expect.poll(() => page.locator("#telemetry-chart .u-legend").textContent()).toContain("GPU %");
    // Itemised cost from metering.
    await expect.poll(() => page.locator("#cost-total").textContent(), { timeout: 15_000 }).toMatch(/^\$\d+\.\d{6}$/);
    await page.screenshot({ path: artifact("dashboard-task.png"), fullPage: true });
    await page.close();
  });

  it("embeds the widgets in a page on another origin with a widget-scoped expiring token, updating live; another workspace's token sees nothing", { timeout: 120_000 }, async () => {
    const other = await net.newWorkspace();
    // What the README tells an app developer to make: a widget key for the app, that expires.
    const widget = await ngpu.keys.create({ name: "shop widget", scope: "widget", apps: ["sleeper"], expiresAt: Date.now() + 3600_000 });
    const expiring = await ngpu.keys.create({ name: "short-lived", scope: "widget", apps: ["sleeper"], expiresAt: Date.now() + 1500 });
    // Long enough to be seen running on a loaded machine, page load included.
    const { task } = await ngpu.tasks.submit({ app: "sleeper", input: { seconds: 6 } });
    let body = `<ngpu-task-card id="mine" task-id="${task.id}" token="${widget.secret}"></ngpu-task-card>
      <ngpu-task-card id="theirs" task-id="${task.id}" token="${other.apiKey}"></ngpu-task-card>
      <ngpu-usage-chart id="usage" token="${widget.secret}" metric="cost" granularity="hour" days="1"></ngpu-usage-chart>
      <ngpu-usage-chart id="their-usage" token="${other.apiKey}" metric="cost" granularity="hour" days="1"></ngpu-usage-chart>
      <script src="${net.url}/embed.js"></script>`;
    const shop = await startEmbedPage(() => body);
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on("pageerror", (e) => errors.push(e.message));
      await page.goto(shop.url);
      const mine = page.locator("#mine");
      const seen = await watchValues(
        async () => ({ state: await mine.locator("[data-state]").getAttribute("data-state"), percent: Number(await mine.locator("[data-percent]").getAttribute("data-percent")) }),
        (v) => v.state === "succeeded",
        30_000,
      );
      expect(seen.map((s) => s.state)).toContain("running");
      expect(new Set(seen.map((s) => s.percent)).size).toBeGreaterThan(2);
      // The other workspace's token gets nothing about this task.
      await page.locator("#theirs").getByText("Task not found.").waitFor();
      expect(await page.locator("#theirs [data-state]").count()).toBe(0);
      expect(errors).toEqual([]);
      // The usage widget charts this workspace's spending; the other workspace's shows none of it.
      await expect.poll(() => page.locator("#usage .total").textContent(), { timeout: 15_000 }).toMatch(/^\$0\.\d{6}$/);
      await page.locator("#usage canvas").first().waitFor();
      await expect.poll(async () => (await page.locator("#usage .total").textContent()) !== "$0.000000", { timeout: 40_000 }).toBe(true);
      expect(await page.locator("#their-usage .total").textContent()).toBe("$0.000000");
      await page.screenshot({ path: artifact("embed-widgets.png"), fullPage: true });

      // An expired token shows nothing.
      await new Promise((r) => setTimeout(r, Math.max(0, Number(expiring.key.expireTime!.seconds) * 1000 - Date.now() + 200)));
      body = `<ngpu-task-card id="expired" task-id="${task.id}" token="${expiring.secret}"></ngpu-task-card><script src="${net.url}/embed.js"></script>`;
      await page.goto(shop.url);
      await page.locator("#expired").getByText("This token cannot show the task.").waitFor();

      // Signed in to the dashboard, the other workspace sees no tasks and no apps of ours.
      const theirs = await signedIn(other.apiKey);
      await theirs.goto(`${net.url}/#/tasks`);
      await theirs.getByText("No tasks match.").waitFor();
      await theirs.goto(`${net.url}/#/tasks/${task.id}`);
      await theirs.getByText(`task "${task.id}" not found`).waitFor();
      await theirs.close();
      await page.close();
    } finally {
      body = "";
      await shop.close();
    }
  });

  it("shows usage per hour and per day by app and GPU model in a chosen time zone, provider earnings, and app pools", { timeout: 120_000 }, async () => {
    await ngpu.apps.deploy({ name: "pooled", runtime: builtin("echo"), gpu: { count: 1 }, pool: { minNodes: 1, maxNodes: 1, targetTasksPerNode: 4 } });
    await ngpu.tasks.run({ app: "sleeper", input: { seconds: 0.5 } }, { waitMs: 30_000 });
    const page = await signedIn(net.apiKey);

    await page.goto(`${net.url}/#/usage`);
    const charts = page.locator("ngpu-usage-chart-view");
    await expect.poll(() => charts.count()).toBe(3);
    await expect.poll(() => page.locator("ngpu-usage-chart-view canvas").count(), { timeout: 15_000 }).toBeGreaterThanOrEqual(3);
    // Per hour by app: the legend names the apps, the totals are this workspace's.
    await expect.poll(() => charts.nth(2).locator(".u-legend").textContent()).toContain("sleeper");
    expect(await charts.nth(0).locator(".head").textContent()).toContain("per hour");
    expect(await charts.nth(2).locator(".total").textContent()).toMatch(/^\$0\.\d*[1-9]\d*$/);
    // Another zone, per day, by GPU model.
    await page.selectOption("#tz", "Asia/Tokyo");
    await page.selectOption("#granularity", "day");
    await page.selectOption("#group", "gpu-model");
    await expect.poll(() => charts.nth(2).getAttribute("time-zone")).toBe("Asia/Tokyo");
    await expect.poll(() => charts.nth(1).locator(".head").textContent()).toContain("per day");
    await expect.poll(() => charts.nth(1).locator(".u-legend").textContent(), { timeout: 15_000 }).toContain("NVIDIA GeForce RTX 3090");
    await page.screenshot({ path: artifact("dashboard-usage.png"), fullPage: true });

    // The node is this workspace's: its share of what the node earned.
    await page.goto(`${net.url}/#/earnings`);
    const earnings = page.locator("ngpu-usage-chart-view").first();
    await expect.poll(() => earnings.locator(".total").textContent(), { timeout: 15_000 }).toMatch(/^\$0\.\d*[1-9]\d*$/);
    await expect.poll(() => earnings.locator(".u-legend").textContent()).toContain(worker.nodeId());

    // The pooled app's pool: kept warm on the one node.
    await page.goto(`${net.url}/#/apps`);
    const pooled = page.locator('tr[data-app="pooled"] .pool');
    await expect.poll(() => pooled.textContent(), { timeout: 20_000 }).toMatch(/1 warm/);
    expect(await pooled.textContent()).toContain("gpu-box");
    expect(await page.locator('tr[data-app="sleeper"] .pool').textContent()).toContain("no pool");
    await page.screenshot({ path: artifact("dashboard-apps.png"), fullPage: true });
    await page.close();
  });
});
