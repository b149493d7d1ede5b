import { execFileSync } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, describe, expect, it } from "vitest";
import { type ControlPlane, startControlPlane } from "../../control-plane/control-plane.js";
import { createApiKey, createEnrollmentToken, createWorkspace } from "../../control-plane/db/credentials.js";
import { createLogger } from "../../control-plane/log.js";
import { TaskState } from "../../gen/ngpu/v1/task_pb.js";
import type { Worker } from "../../worker/worker.js";
import { TEST_NATS_URL, testPrefix } from "../helpers/network.js";
import { builtin, client } from "../helpers/sdk.js";
import { eventually, startTestWorker } from "../helpers/workers.js";
import { pickFreePort } from "../../worker/runtime/free-port.js";

const PG_BIN = existsSync("/usr/lib/postgresql") ? join("/usr/lib/postgresql", readdirSync("/usr/lib/postgresql").sort().at(-1)!, "bin") : "";


/**
 * A Postgres restart, on a private Postgres server of the test's own (the
 * shared one serves other tests): calls answer UNAVAILABLE meanwhile, nothing
 * crashes, and service comes back by itself.
 */
describe("Postgres restart", () => {
  const dir = mkdtempSync(join(tmpdir(), "ngpu-pg-"));
  const data = join(dir, "data");
  let port = 0;
  let cp: ControlPlane | undefined;
  let worker: Worker | undefined;
  // initdb and the server refuse to run as root: run them as the postgres user where we are root.
  const asPostgres = (cmd: string, args: string[]) =>
    process.getuid?.() === 0 ? execFileSync("runuser", ["-u", "postgres", "--", join(PG_BIN, cmd), ...args], { stdio: "pipe" }) : execFileSync(join(PG_BIN, cmd), args, { stdio: "pipe" });
  const pgCtl = (action: "start" | "stop") =>
    asPostgres("pg_ctl", action === "start" ? ["-D", data, "-w", "-l", join(dir, "log"), "-o", `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1`, "start"] : ["-D", data, "-w", "-m", "fast", "stop"]);

  afterAll(async () => {
    await worker?.shutdown(0);
    await cp?.shutdown();
    try {
      pgCtl("stop");
    } catch {
      // already stopped
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it("answers UNAVAILABLE while Postgres is down and recovers by itself", async () => {
    if (process.getuid?.() === 0) chownSync(dir, 101, 104);
    asPostgres("initdb", ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8"]);
    port = await pickFreePort();
    pgCtl("start");
    const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
    cp = await startControlPlane(
      {
        database: { kind: "postgres", url, poolSize: 4 },
        natsUrl: TEST_NATS_URL,
        natsPrefix: testPrefix(),
        host: "127.0.0.1",
        port: 0,
        replicaId: "",
        heartbeatIntervalMs: 1000,
        lostAfterMs: 3000,
        reconnectGraceMs: 1000,
        logLevel: "silent",
      },
      { logger: createLogger({ level: "silent" }) },
    );
    const ws = await createWorkspace(cp.db, "pg");
    const { key } = await createApiKey(cp.db, ws.id);
    const { token } = await createEnrollmentToken(cp.db, { name: "restart", maxUses: 100 });
    worker = await startTestWorker({ url: cp.url, enrollmentToken: token });
    const ngpu = client(cp.url, key);
    try {
      await ngpu.apps.deploy({ name: "echo", runtime: builtin("echo"), gpu: { count: 1 } });
      expect((await ngpu.tasks.run({ app: "echo", input: { before: true } })).task.state).toBe(TaskState.SUCCEEDED);

      pgCtl("stop");
      const err = await ngpu.tasks.submit({ app: "echo", input: {} }).then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
      expect(err?.code).toBe(Code.Unavailable);
      expect(err?.rawMessage).toMatch(/temporarily unavailable/);

      pgCtl("start");
      const after = await eventually(async () => {
        const r = await ngpu.tasks.run({ app: "echo", input: { after: true } }, { waitMs: 10_000 });
        return r.task.state === TaskState.SUCCEEDED ? r.task : undefined;
      }, 30_000, "service to come back");
      expect(after.state).toBe(TaskState.SUCCEEDED);
    } finally {
      await ngpu.close();
    }
  }, 90_000);
});
