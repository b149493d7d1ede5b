import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { type LocalNatsServer, findNatsServer, startLocalNatsServer } from "../../cli/dev/nats-server.js";
import { deployApp } from "../../control-plane/db/apps.js";
import { createApiKey, createEnrollmentToken, createWorkspace } from "../../control-plane/db/credentials.js";
import { type Db, openDatabase } from "../../control-plane/db/database.js";
import { TERMINAL_STATES } from "../../control-plane/db/tasks.js";
import { createNgpuClient, TaskState } from "../../sdk/index.js";
import { createTestDatabase, type TestDatabase } from "../helpers/postgres.js";
import { testPrefix } from "../helpers/network.js";
import { eventually } from "../helpers/workers.js";
import { pickFreePort } from "../../worker/runtime/free-port.js";

const ROOT = resolve(import.meta.dirname, "../..");

/** The builtin sleep app on one GPU, written straight to the database (no control plane runs yet). */
function deploySleepy(db: Db, workspaceId: string, maxAttempts: number) {
  return deployApp(db, workspaceId, {
    name: "sleepy",
    description: "",
    runtime: { kind: "builtin", name: "sleep" },
    gpuCount: 1,
    gpuMinMemoryBytes: 0,
    gpuModels: [],
    env: {},
    inputSchema: undefined,
    timeoutMs: 0,
    maxAttempts,
    queueTtlMs: 0,
  });
}
const TASKS = 300;


/**
 * Bounded chaos on loopback: a few hundred tasks over several worker and
 * control-plane processes while workers are SIGKILLed, a control-plane replica
 * is SIGKILLed and restarted, and NATS is restarted. Afterwards every task has
 * exactly one terminal state and succeeded once, and no superseded attempt
 * produced a result.
 */
describe("chaos", () => {
  let database: TestDatabase | undefined;
  let db: Db | undefined;
  let nats: LocalNatsServer | undefined;
  const children = new Set<ChildProcess>();
  const dir = mkdtempSync(join(tmpdir(), "ngpu-chaos-"));

  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    await nats?.stop();
    await db?.destroy();
    await database?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  function spawnNode(args: string[], env: Record<string, string>): ChildProcess {
    const child = spawn(process.execPath, ["--import", "tsx", ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: "ignore" });
    children.add(child);
    return child;
  }

  it("loses nothing and duplicates nothing while workers, a control plane and NATS fail", async () => {
    database = await createTestDatabase();
    db = await openDatabase({ kind: "postgres", url: database.url, poolSize: 4 });
    const natsBinary = findNatsServer(process.env);
    expect(natsBinary, "nats-server must be installed").toBeDefined();
    const natsPort = await pickFreePort();
    const natsDir = join(dir, "nats");
    nats = await startLocalNatsServer(natsBinary!, natsDir, natsPort);
    const ws = await createWorkspace(db, "chaos");
    const { key } = await createApiKey(db, ws.id);
    const { token } = await createEnrollmentToken(db, { name: "chaos workers", maxUses: 100 });
    await deploySleepy(db, ws.id, 6);

    const prefix = testPrefix();
    const ports = [await pickFreePort(), await pickFreePort()];
    const cpEnv = (port: number) => ({
      DATABASE_URL: database!.url,
      NATS_URL: nats!.url,
      NGPU_NATS_PREFIX: prefix,
      NGPU_LISTEN: `127.0.0.1:${port}`,
      NGPU_LOG_LEVEL: "silent",
      NGPU_DB_POOL_SIZE: "4",
    });
    const startCp = (port: number) => spawnNode(["cli/main.ts", "control-plane"], cpEnv(port));
    const cps = ports.map(startCp);
    const urls = ports.map((p) => `http://127.0.0.1:${p}`);
    const health = async (url: string) => (await fetch(`${url}/grpc.health.v1.Health/Check`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" })).ok;
    for (const url of urls) await eventually(() => health(url).then((ok) => (ok ? true : undefined)), 30_000, `${url} healthy`);

    let workerCount = 0;
    const startWorker = (url: string) =>
      spawnNode(["worker/bin.ts", "--control-plane", url, "--token", token, "--simulate-gpu", "NVIDIA GeForce RTX 3090:24GiB:4", "--data-dir", join(dir, `w${++workerCount}`), "--log-level", "silent"], {});
    const workers = [startWorker(urls[0]!), startWorker(urls[0]!), startWorker(urls[1]!), startWorker(urls[1]!)];
    const ngpu = createNgpuClient({ baseUrl: urls[0]!, apiKey: key });
    try {
      await eventually(async () => ((await ngpu.nodes.list()).nodes.length === 4 ? true : undefined), 30_000, "4 workers online");

      const ids: string[] = [];
      for (let i = 0; i < TASKS; i += 50) {
        const batch = await Promise.all(
          Array.from({ length: Math.min(50, TASKS - i) }, (_, j) => ngpu.tasks.submit({ app: "sleepy", input: { seconds: 0.1 + ((i + j) % 3) * 0.1 }, idempotencyKey: `chaos-${i + j}` })),
        );
        ids.push(...batch.map((r) => r.task.id));
      }
      const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

      await pause(800);
      workers[0]!.kill("SIGKILL"); // a provider's machine dies
      await pause(700);
      cps[1]!.kill("SIGKILL"); // a control-plane replica dies…
      await pause(1000);
      cps[1] = startCp(ports[1]!); // …and comes back on its address
      await pause(1000);
      await nats.stop(); // NATS restarts, keeping its store
      nats = await startLocalNatsServer(natsBinary!, natsDir, natsPort);
      await pause(500);
      workers[2]!.kill("SIGKILL");
      workers.push(startWorker(urls[1]!)); // a new provider joins

      await eventually(
        async () => {
          const open = await db!.selectFrom("tasks").select(db!.fn.countAll<number>().as("n")).where("state", "not in", [...TERMINAL_STATES]).executeTakeFirstOrThrow();
          return Number(open.n) === 0 ? true : undefined;
        },
        150_000,
        "every task to end",
      );

      const tasks = await db.selectFrom("tasks").select(["id", "state", "current_attempt_id", "output"]).where("id", "in", ids).execute();
      expect(tasks).toHaveLength(TASKS);
      // Every task could succeed, and did.
      expect(tasks.filter((t) => t.state !== "SUCCEEDED").map((t) => `${t.id}:${t.state}`)).toEqual([]);
      const attempts = await db.selectFrom("attempts").select(["id", "task_id", "state"]).where("task_id", "in", ids).execute();
      const byTask = new Map<string, typeof attempts>();
      for (const a of attempts) byTask.set(a.task_id, [...(byTask.get(a.task_id) ?? []), a]);
      for (const t of tasks) {
        const mine = byTask.get(t.id) ?? [];
        // The result came from exactly one attempt: the current one.
        const succeeded = mine.filter((a) => a.state === "SUCCEEDED");
        expect(succeeded.map((a) => a.id)).toEqual([t.current_attempt_id]);
        // Superseded attempts produced no result.
        for (const a of mine) if (a.id !== t.current_attempt_id) expect(["LOST", "RELEASED", "CANCELLED"]).toContain(a.state);
        expect(t.output).toHaveProperty("slept_seconds");
      }
      // The failures did cost some attempts: the test exercised failover.
      expect(attempts.filter((a) => a.state === "LOST").length).toBeGreaterThan(0);
    } finally {
      await ngpu.close();
    }
  }, 240_000);
});

/**
 * The only control plane dies (kill -9) while a task runs and comes back after
 * longer than the heartbeat threshold: the worker kept running the task and
 * reports it; nothing is run twice and the node is not counted as having lost work.
 */
describe("the only control plane restarting", () => {
  let database: TestDatabase | undefined;
  let db: Db | undefined;
  const children = new Set<ChildProcess>();
  const dir = mkdtempSync(join(tmpdir(), "ngpu-restart-"));

  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    await db?.destroy();
    await database?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("loses no running task and restarts none", async () => {
    database = await createTestDatabase();
    db = await openDatabase({ kind: "postgres", url: database.url, poolSize: 2 });
    const ws = await createWorkspace(db, "restart");
    const { key } = await createApiKey(db, ws.id);
    const { token } = await createEnrollmentToken(db, { name: "chaos workers", maxUses: 100 });
    await deploySleepy(db, ws.id, 3);
    const port = await pickFreePort();
    const url = `http://127.0.0.1:${port}`;
    const env = { ...process.env, DATABASE_URL: database.url, NATS_URL: process.env.NGPU_TEST_NATS_URL ?? "nats://127.0.0.1:4222", NGPU_NATS_PREFIX: testPrefix(), NGPU_LISTEN: `127.0.0.1:${port}`, NGPU_LOG_LEVEL: "silent" };
    const spawnNode = (args: string[]) => {
      const child = spawn(process.execPath, ["--import", "tsx", ...args], { cwd: ROOT, env, stdio: "ignore" });
      children.add(child);
      return child;
    };
    const health = () => fetch(`${url}/grpc.health.v1.Health/Check`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" }).then((r) => (r.ok ? true : undefined), () => undefined);
    let cp = spawnNode(["cli/main.ts", "control-plane"]);
    await eventually(health, 30_000, "control plane up");
    spawnNode(["worker/bin.ts", "--control-plane", url, "--token", token, "--simulate-gpu", "NVIDIA GeForce RTX 3090:24GiB", "--data-dir", join(dir, "w"), "--log-level", "silent"]);
    const ngpu = createNgpuClient({ baseUrl: url, apiKey: key });
    try {
      await eventually(async () => ((await ngpu.nodes.list()).nodes.length === 1 ? true : undefined), 30_000, "worker joined");
      const { task } = await ngpu.tasks.submit({ app: "sleepy", input: { seconds: 6 } });
      await eventually(async () => ((await ngpu.tasks.get(task.id)).state === TaskState.RUNNING ? true : undefined), 15_000, "task running");
      cp.kill("SIGKILL");
      // Down for longer than the 3 s heartbeat threshold.
      await new Promise((r) => setTimeout(r, 4_500));
      cp = spawnNode(["cli/main.ts", "control-plane"]);
      await eventually(health, 30_000, "control plane back");
      const done = await ngpu.tasks.wait(task.id, { timeoutMs: 40_000 });
      expect(done.state).toBe(TaskState.SUCCEEDED);
      expect(done.attemptCount).toBe(1);
      const attempts = await db.selectFrom("attempts").select("state").where("task_id", "=", task.id).execute();
      expect(attempts.map((a) => a.state)).toEqual(["SUCCEEDED"]);
      const node = (await ngpu.nodes.list()).nodes[0]!;
      expect(Number(node.lostAttempts)).toBe(0);
    } finally {
      await ngpu.close();
    }
  }, 120_000);
});
