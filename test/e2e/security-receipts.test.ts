import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Outcome } from "../../gen/ngpu/v1/worker_pb.js";
import { type NgpuClient, TaskState } from "../../sdk/index.js";
import type { Worker } from "../../worker/worker.js";
import { startFakeWorker } from "../helpers/fake-worker.js";
import { startTestNetwork, type TestNetwork } from "../helpers/network.js";
import { builtin, client } from "../helpers/sdk.js";
import { eventually, startTestWorker } from "../helpers/workers.js";
import { runCli } from "../helpers/cli.js";


describe("security: verifiable usage receipts", () => {
  let net: TestNetwork;
  let ngpu: NgpuClient;
  let worker: Worker;
  const dir = mkdtempSync(join(tmpdir(), "ngpu-receipts-"));

  /** Receipts of every record written so far. */
  const settled = () =>
    eventually(async () => {
      const bundle = await ngpu.receipts.fetch();
      return bundle.unreceiptedRecords === 0 ? bundle : undefined;
    }, 15_000, "receipts for every usage record");

  beforeAll(async () => {
    net = await startTestNetwork();
    ngpu = client(net.url, net.apiKey);
    worker = await startTestWorker(net, ["NVIDIA GeForce RTX 3090:24GiB"]);
    await ngpu.apps.deploy({ name: "echo", runtime: builtin("echo"), gpu: { count: 1 } });
    // Honest work by a real worker, signing with its node key.
    for (let i = 0; i < 3; i++) {
      const { task } = await ngpu.tasks.submit({ app: "echo", input: { i } });
      expect((await ngpu.tasks.wait(task.id, { timeoutMs: 20_000 })).state).toBe(TaskState.SUCCEEDED);
    }
  });
  afterAll(async () => {
    await worker.shutdown(1_000);
    await ngpu.close();
    await net.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("honest records verify: signed by the worker and the control plane, chained", async () => {
    const bundle = await settled();
    expect(bundle.receipts.length).toBeGreaterThanOrEqual(3);
    const result = await ngpu.receipts.verify();
    expect(result.problems).toEqual([]);
    expect(result.ok).toBe(true);
    const body = JSON.parse(bundle.receipts[0]!.body) as { seq: number; prevHash: string; worker: { claim: { gpuUuids: string[]; gpuMs: number } } | null };
    expect(body).toMatchObject({ seq: 1, prevHash: "" });
    expect(body.worker?.claim.gpuUuids).toHaveLength(1);
    // The node key that signed is the one the node registered.
    const node = await net.cp.db.selectFrom("nodes").select("public_key").where("id", "=", worker.nodeId()).executeTakeFirstOrThrow();
    expect((body.worker as unknown as { publicKey: string }).publicKey).toBe(node.public_key);
  });

  it("fails when any field of a stored usage row is changed", async () => {
    const bundle = await settled();
    const attemptId = bundle.receipts[1]!.attemptId;
    const columns = await sql<{ column_name: string; data_type: string }>`
      SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'usage_records' AND column_name <> 'recorded_at'`.execute(net.cp.db);
    expect(columns.rows.length).toBeGreaterThan(15);
    for (const { column_name: column, data_type: type } of columns.rows) {
      const numeric = ["bigint", "integer", "numeric"].includes(type);
      const changed = numeric ? sql`COALESCE(${sql.ref(column)}, 0) + 1` : sql`COALESCE(${sql.ref(column)}, '') || 'x'`;
      const before = await sql<Record<string, unknown>>`SELECT ${sql.ref(column)} AS v FROM usage_records WHERE attempt_id = ${attemptId}`.execute(net.cp.db);
      await sql`UPDATE usage_records SET ${sql.ref(column)} = ${changed} WHERE attempt_id = ${attemptId}`.execute(net.cp.db);
      // The key column moved the row: look it up by its new id.
      const key = column === "attempt_id" ? `${attemptId}x` : attemptId;
      try {
        const result = await ngpu.receipts.verify();
        expect(result.ok, `changing ${column}`).toBe(false);
        expect(result.problems.join("\n"), `changing ${column}`).toMatch(column === "attempt_id" ? /usage record was removed/ : new RegExp(`changed since it was signed \\(${column}\\)`));
      } finally {
        await sql`UPDATE usage_records SET ${sql.ref(column)} = ${before.rows[0]!.v} WHERE attempt_id = ${key}`.execute(net.cp.db);
      }
    }
    expect((await ngpu.receipts.verify()).ok).toBe(true);
  });

  it("fails when a usage row is removed, or a receipt with it", async () => {
    const bundle = await settled();
    const victim = bundle.receipts[0]!.attemptId;
    const row = await net.cp.db.selectFrom("usage_records").selectAll().where("attempt_id", "=", victim).executeTakeFirstOrThrow();
    await net.cp.db.deleteFrom("usage_records").where("attempt_id", "=", victim).execute();
    let result = await ngpu.receipts.verify();
    expect(result.ok).toBe(false);
    expect(result.problems.join("\n")).toMatch(/receipt 1 .*: the usage record was removed/);
    // Removing its receipt too breaks the chain.
    const receipt = await net.cp.db.selectFrom("usage_receipts").selectAll().where("attempt_id", "=", victim).executeTakeFirstOrThrow();
    await net.cp.db.deleteFrom("usage_receipts").where("attempt_id", "=", victim).execute();
    result = await ngpu.receipts.verify();
    expect(result.ok).toBe(false);
    expect(result.problems.join("\n")).toMatch(/missing from the chain|does not chain/);
    await net.cp.db.insertInto("usage_receipts").values(receipt).execute();
    await net.cp.db.insertInto("usage_records").values(row as never).execute();
    // (Restored: the trigger queued it again; it is already receipted, so the writer skips nothing but the duplicate.)
    await net.cp.db.deleteFrom("receipt_queue").where("attempt_id", "=", victim).execute();
    expect((await ngpu.receipts.verify()).ok).toBe(true);
  });

  it("a worker claim signed by another key is not attested, and the receipt says so", async () => {
    await ngpu.apps.deploy({ name: "fake-echo", runtime: builtin("echo"), gpu: { count: 1, allowedModels: ["NVIDIA Receipt GPU"] } });
    const fake = await startFakeWorker(net.url, {
      enrollmentToken: net.enrollmentToken,
      name: "receipt-fake",
      gpus: [{ index: 0, uuid: "GPU-receipt-0", model: "NVIDIA Receipt GPU", memoryTotalBytes: 24n * 1024n ** 3n }],
    });
    try {
      const { task } = await ngpu.tasks.submit({ app: "fake-echo", input: {} });
      const a = await fake.nextAssignment();
      fake.started(a);
      fake.send({
        message: {
          case: "taskUpdate",
          value: { taskId: a.taskId, attemptId: a.attemptId, fencingToken: a.fencingToken, update: { case: "finished", value: { outcome: Outcome.SUCCEEDED, startedAtMs: BigInt(Date.now() - 5), endedAtMs: BigInt(Date.now()), workerSignature: new Uint8Array(64).fill(7) } } },
        },
      });
      await eventually(() => (fake.rejections.some((r) => /^task_update\.finished\.worker_signature: does not verify/.test(r)) ? true : undefined));
      await ngpu.tasks.wait(task.id, { timeoutMs: 10_000 });
      const bundle = await settled();
      const mine = bundle.receipts.find((r) => r.attemptId === a.attemptId)!;
      expect(JSON.parse(mine.body).worker).toBeNull();
      expect((await ngpu.receipts.verify()).ok).toBe(true);
    } finally {
      fake.kill();
    }
  });

  it("ngpu usage verify checks them, also offline from an exported file", async () => {
    await settled();
    const file = join(dir, "receipts.json");
    const run = (args: string[]) => runCli(args);
    const online = await run(["--url", net.url, "--api-key", net.apiKey, "usage", "verify", "--export", file]);
    expect(online.stdout, online.stderr).toMatch(/^ok: \d+ receipts verify/m);
    expect(online.code).toBe(0);
    // Offline, with the server gone from the picture: a wrong URL proves nothing is fetched.
    const offline = await run(["--url", "http://127.0.0.1:1", "--api-key", "key_x.y", "usage", "verify", "--file", file]);
    expect(offline.stdout).toMatch(/^ok: \d+ receipts verify/m);
    expect(offline.code).toBe(0);
  });
});
