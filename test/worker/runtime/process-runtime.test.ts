import { describe, expect, it } from "vitest";
import { createCogClient } from "../../../worker/runtime/cog-client.js";
import { AppStartError } from "../../../worker/runtime/errors.js";
import { pickFreePort } from "../../../worker/runtime/free-port.js";
import { startProcessInstance } from "../../../worker/runtime/process-runtime.js";
import { processAlive, REPO_ROOT, startDemoApp, waitUntil } from "./demo-app.js";

// A stand-in app in plain Node: starts a grandchild (`sleep`), prints its pid, answers
// health-checks READY on $PORT and (with IGNORE_TERM) shrugs off SIGTERM, so stop() must escalate.
const STUBBORN_APP = `
const { spawn } = require("node:child_process");
const http = require("node:http");
const helper = spawn("sleep", ["300"], { stdio: "ignore" });
console.log("helper pid " + helper.pid);
console.log("gpus=[" + process.env.CUDA_VISIBLE_DEVICES + "] secret=" + (process.env.SECRET ?? "unset") + " app=" + process.env.APP_SETTING);
if (process.env.IGNORE_TERM) process.on("SIGTERM", () => console.log("ignoring SIGTERM"));
http.createServer((req, res) => res.end(JSON.stringify({ status: "READY" }))).listen(Number(process.env.PORT), "127.0.0.1");
`;

const helperPid = (output: string) => Number(/helper pid (\d+)/.exec(output)?.[1]);

describe("process runtime", () => {
  it("starts the demo app, measures its cold start and stops it without leftovers", async () => {
    const instance = await startDemoApp({ env: { STYLE_APP_SETUP_MS: "500", STYLE_APP_STEP_DELAY_MS: "25" } });
    try {
      expect(instance.kind).toBe("process");
      expect(instance.baseUrl).toBe(`http://127.0.0.1:${instance.port}`);
      // Setup alone takes 500 ms; node + tsx + sharp startup comes on top.
      expect(instance.coldStartMs).toBeGreaterThanOrEqual(500);
      expect(instance.coldStartMs).toBeLessThan(20_000);
      expect((await instance.client.healthCheck()).status).toBe("READY");
      expect(processAlive(instance.pid)).toBe(true);
    } finally {
      const exit = await instance.stop();
      expect(exit.stopped).toBe(true);
    }
    expect(processAlive(instance.pid)).toBe(false);
    await expect(instance.client.healthCheck()).rejects.toMatchObject({ name: "CogError", code: "unreachable" });
    // stop() is idempotent.
    await instance.stop();
  });

  it("kills the whole process group, escalating to SIGKILL when SIGTERM is ignored", async () => {
    const instance = await startProcessInstance({
      command: [process.execPath, "-e", STUBBORN_APP],
      baseEnv: { PATH: process.env.PATH, SECRET: undefined },
      env: { IGNORE_TERM: "1", APP_SETTING: "on", PORT: "1", CUDA_VISIBLE_DEVICES: "7" },
      gpuIndices: [0, 2],
      stopGraceMs: 300,
    });
    await waitUntil(() => /helper pid \d+/.test(instance.outputTail()), 5_000, "helper pid");
    const helper = helperPid(instance.outputTail());
    expect(processAlive(helper)).toBe(true);
    // The platform's PORT and CUDA_VISIBLE_DEVICES win over the app's env; nothing else is inherited.
    expect(instance.outputTail()).toContain("gpus=[0,2] secret=unset app=on");

    const t0 = performance.now();
    const exit = await instance.stop();
    expect(performance.now() - t0).toBeGreaterThanOrEqual(250);
    expect(exit).toMatchObject({ signal: "SIGKILL", stopped: true });
    expect(exit.outputTail).toContain("ignoring SIGTERM");
    await waitUntil(() => !processAlive(helper) && !processAlive(instance.pid), 2_000, "group gone");
  });

  it("sweeps what a crashed app left behind", async () => {
    const instance = await startProcessInstance({
      command: [process.execPath, "-e", `${STUBBORN_APP}; setTimeout(() => process.exit(3), 300);`],
      baseEnv: { PATH: process.env.PATH },
      stopGraceMs: 200,
    });
    await waitUntil(() => /helper pid \d+/.test(instance.outputTail()), 5_000, "helper pid");
    const helper = helperPid(instance.outputTail());
    const exit = await instance.exited;
    expect(exit).toMatchObject({ code: 3, stopped: false });
    await waitUntil(() => !processAlive(helper), 3_000, "helper swept");
  });

  it("fails clearly when the command exits at once", async () => {
    const err = await startProcessInstance({
      command: [process.execPath, "-e", 'console.error("model weights not found: /weights/model.safetensors"); process.exit(2)'],
      readyTimeoutMs: 10_000,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AppStartError);
    expect(err).toMatchObject({ code: "exited" });
    expect((err as Error).message).toMatch(/exited before it was ready \(code 2/);
    expect((err as Error).message).toContain("model weights not found");
  });

  it("fails clearly when the program does not exist", async () => {
    const err = await startProcessInstance({ command: ["/nonexistent/ngpu-app"] }).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: "AppStartError", code: "spawn_failed" });
    expect((err as Error).message).toContain("ENOENT");
  });

  it("reports SETUP_FAILED with the app's setup logs and leaves nothing running", async () => {
    const port = await pickFreePort();
    const err = await startDemoApp({ port, env: { STYLE_APP_FAIL_SETUP: "1" } }).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: "AppStartError", code: "setup_failed" });
    expect((err as AppStartError).outputTail).toContain("setup failed on purpose");
    // The app was stopped: nothing answers on its port any more.
    await expect(createCogClient({ baseUrl: `http://127.0.0.1:${port}` }).healthCheck()).rejects.toMatchObject({ code: "unreachable" });
  });

  it("gives up after the ready timeout and kills the app", async () => {
    const t0 = performance.now();
    const err = await startProcessInstance({
      command: [process.execPath, "-e", 'console.log("loading..."); setInterval(() => {}, 1000)'],
      readyTimeoutMs: 400,
      stopGraceMs: 500,
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: "AppStartError", code: "ready_timeout" });
    expect((err as Error).message).toContain("loading...");
    expect(performance.now() - t0).toBeLessThan(3_000);
  });

  it("stops a start when its signal aborts", async () => {
    const controller = new AbortController();
    const pending = startProcessInstance({
      command: [process.execPath, "-e", "setInterval(() => {}, 1000)"],
      cwd: REPO_ROOT,
      signal: controller.signal,
    });
    setTimeout(() => controller.abort(new Error("worker draining")), 100);
    await expect(pending).rejects.toThrow("worker draining");
  });
});
