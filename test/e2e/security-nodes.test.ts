import { statSync } from "node:fs";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEnrollmentToken } from "../../control-plane/db/credentials.js";
import { Code, ConnectError, NodeState, type NgpuClient, TaskState } from "../../sdk/index.js";
import { parseSimulatedGpuSpec } from "../../worker/gpu/simulated-gpu.js";
import { createLogger } from "../../worker/log.js";
import { startWorker } from "../../worker/worker.js";
import { startFakeWorker } from "../helpers/fake-worker.js";
import { startTestNetwork, type TestNetwork } from "../helpers/network.js";
import { newNodeKey } from "../helpers/node-key.js";
import { builtin, client } from "../helpers/sdk.js";
import { eventually } from "../helpers/workers.js";

const gpu = { index: 0, uuid: "GPU-sec-0", model: "NVIDIA T4", memoryTotalBytes: 16n * 1024n ** 3n };

async function refusal(start: Promise<unknown>): Promise<ConnectError> {
  try {
    const w = (await start) as { kill(): void };
    w.kill();
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("the worker was admitted; expected a refusal");
}

describe("security: provider identity (enrollment tokens, node keys, revocation)", () => {
  let net: TestNetwork;
  let ngpu: NgpuClient;
  const dirs: string[] = [];

  beforeAll(async () => {
    net = await startTestNetwork();
    ngpu = client(net.url, net.apiKey);
    await ngpu.apps.deploy({ name: "sleep", runtime: builtin("sleep"), gpu: { count: 1 } });
  });
  afterAll(async () => {
    await ngpu.close();
    await net.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it("an enrollment token admits one new node; a used token fails", async () => {
    const { token } = await createEnrollmentToken(net.cp.db, { name: "one" });
    const first = await startFakeWorker(net.url, { enrollmentToken: token, name: "first", gpus: [gpu] });
    try {
      const err = await refusal(startFakeWorker(net.url, { enrollmentToken: token, name: "second", gpus: [gpu] }));
      expect(err.code).toBe(Code.Unauthenticated);
      expect(err.rawMessage).toMatch(/^hello\.enrollment_token: enrollment token was already used/);
      // The node that used it comes back on its key, though the token is spent.
      first.kill();
      const again = await startFakeWorker(net.url, { enrollmentToken: token, nodeId: first.nodeId, name: "first", gpus: [gpu] }, { key: first.key });
      expect(again.nodeId).toBe(first.nodeId);
      again.kill();
      // Even with no token at all.
      const noToken = await startFakeWorker(net.url, { nodeId: first.nodeId, name: "first", gpus: [gpu] }, { key: first.key });
      noToken.kill();
    } finally {
      first.kill();
    }
    const nodes = await net.cp.db.selectFrom("nodes").select("name").where("name", "=", "second").execute();
    expect(nodes).toEqual([]);
  });

  it("operators create enrollment tokens through the API: counted uses, optional expiry", async () => {
    const { token } = await ngpu.keys.createEnrollmentToken({ name: "fleet", maxUses: 2, expiresAt: Date.now() + 3_600_000 });
    const joined = [];
    for (const name of ["fleet-1", "fleet-2"]) joined.push(await startFakeWorker(net.url, { enrollmentToken: token, name, gpus: [gpu] }));
    try {
      const third = await refusal(startFakeWorker(net.url, { enrollmentToken: token, name: "fleet-3", gpus: [gpu] }));
      expect(third.rawMessage).toMatch(/already used/);
    } finally {
      for (const w of joined) w.kill();
    }
    const other = await net.newWorkspace();
    const outsider = client(net.url, other.apiKey);
    try {
      const err = await outsider.keys.createEnrollmentToken().catch((e: unknown) => ConnectError.from(e));
      expect((err as ConnectError).code).toBe(Code.PermissionDenied);
      expect((err as ConnectError).rawMessage).toMatch(/operator workspace/);
    } finally {
      await outsider.close();
    }
    const past = await ngpu.keys.createEnrollmentToken({ expiresAt: Date.now() - 1 }).catch((e: unknown) => ConnectError.from(e));
    expect((past as ConnectError).code).toBe(Code.InvalidArgument);
  });

  it("an expired enrollment token fails", async () => {
    const { token } = await createEnrollmentToken(net.cp.db, { name: "stale", expiresAt: new Date(Date.now() - 1000) });
    const err = await refusal(startFakeWorker(net.url, { enrollmentToken: token, name: "late", gpus: [gpu] }));
    expect(err.code).toBe(Code.Unauthenticated);
    expect(err.rawMessage).toMatch(/^hello\.enrollment_token: enrollment token expired at/);
    // Unused: a failed join does not spend a token.
    const row = await net.cp.db.selectFrom("enrollment_tokens").select("uses").where("id", "=", token.split(".")[0]!).executeTakeFirstOrThrow();
    expect(row.uses).toBe(0);
  });

  it("a node id without its private key fails", async () => {
    const real = await startFakeWorker(net.url, { enrollmentToken: net.enrollmentToken, name: "real", gpus: [gpu] });
    real.kill();
    // Another key, with or without a valid enrollment token.
    const impostor = await refusal(startFakeWorker(net.url, { enrollmentToken: net.enrollmentToken, nodeId: real.nodeId, name: "impostor", gpus: [gpu] }, { key: newNodeKey() }));
    expect(impostor.code).toBe(Code.Unauthenticated);
    expect(impostor.rawMessage).toMatch(/^hello\.public_key: is not the key registered for node/);
    // The right public key (it is no secret) but a signature by another key.
    const other = newNodeKey();
    const forger = await refusal(
      startFakeWorker(net.url, { nodeId: real.nodeId, name: "forger", gpus: [gpu] }, { key: { ...real.key, prove: other.prove } }),
    );
    expect(forger.code).toBe(Code.Unauthenticated);
    expect(forger.rawMessage).toMatch(/^proof\.signature: does not verify/);
    // A replayed proof from an earlier stream is no good either: each challenge is fresh.
    const captured: Uint8Array[] = [];
    const honest = await startFakeWorker(net.url, { nodeId: real.nodeId, name: "real", gpus: [gpu] }, {
      key: { ...real.key, prove: (nonce) => { const s = real.key.prove(nonce); captured.push(s); return s; } },
    });
    honest.kill();
    const replay = await refusal(startFakeWorker(net.url, { nodeId: real.nodeId, name: "replay", gpus: [gpu] }, { key: { ...real.key, prove: () => captured[0]! } }));
    expect(replay.code).toBe(Code.Unauthenticated);
    // None of the refused hellos changed the node.
    const row = await net.cp.db.selectFrom("nodes").select(["name"]).where("id", "=", real.nodeId).executeTakeFirstOrThrow();
    expect(row.name).toBe("real");
    const missing = await refusal(startFakeWorker(net.url, { enrollmentToken: net.enrollmentToken, name: "keyless", gpus: [gpu] }, { key: { ...newNodeKey(), publicKey: new Uint8Array() } }));
    expect(missing.code).toBe(Code.InvalidArgument);
    expect(missing.rawMessage).toMatch(/^hello\.public_key: must be the node's Ed25519 public key/);
  });

  it("a worker keeps its private key owner-only in its data folder and comes back as the same node", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "ngpu-sec-worker-"));
    dirs.push(dataDir);
    const { token } = await createEnrollmentToken(net.cp.db, { name: "binary" });
    const config = {
      controlPlaneUrl: net.url,
      enrollmentToken: token,
      name: "keyed",
      dataDir,
      simulateGpus: [parseSimulatedGpuSpec("NVIDIA GeForce RTX 3090:24GiB")],
      nvidiaSmiPath: "nvidia-smi",
      maxConcurrentTasks: 0,
      logLevel: "silent",
    };
    const deps = { logger: createLogger("silent"), appBaseEnv: {} };
    const w1 = await startWorker(config, deps);
    const id1 = await w1.ready;
    expect(statSync(join(dataDir, "node-key.pem")).mode & 0o777).toBe(0o600);
    const stored = await net.cp.db.selectFrom("nodes").select("public_key").where("id", "=", id1).executeTakeFirstOrThrow();
    expect(stored.public_key).toMatch(/^[A-Za-z0-9_-]{43}$/);
    await w1.shutdown(1_000);
    // The single-use token is spent; the key is what lets it back in.
    const w2 = await startWorker(config, deps);
    expect(await w2.ready).toBe(id1);
    await w2.shutdown(1_000);
  });

  it("an operator revokes a node: its stream ends, its task runs elsewhere, it cannot come back", async () => {
    const bad = await startFakeWorker(net.url, { enrollmentToken: net.enrollmentToken, name: "bad", gpus: [gpu], runtimes: ["builtin"], maxConcurrentTasks: 1 });
    try {
      const { task } = await ngpu.tasks.submit({ app: "sleep", input: { seconds: 30 } });
      const a = await bad.nextAssignment();
      bad.started(a);
      await eventually(async () => ((await ngpu.tasks.get(task.id)).state === TaskState.RUNNING ? true : undefined));
      // Only operators.
      const other = await net.newWorkspace();
      const outsider = client(net.url, other.apiKey);
      try {
        const err = await outsider.nodes.revoke(bad.nodeId).catch((e: unknown) => ConnectError.from(e));
        expect(err).toBeInstanceOf(ConnectError);
        expect((err as ConnectError).code).toBe(Code.PermissionDenied);
      } finally {
        await outsider.close();
      }
      const node = await ngpu.nodes.revoke(bad.nodeId, "sent forged results");
      expect(node.state).toBe(NodeState.REVOKED);
      const ended = ConnectError.from(await bad.ended);
      expect(ended.code).toBe(Code.PermissionDenied);
      expect(ended.rawMessage).toMatch(/was revoked/);
      // Its task goes back to the queue for another node.
      await eventually(async () => ((await ngpu.tasks.get(task.id)).state === TaskState.QUEUED ? true : undefined));
      // Its updates are no longer taken.
      bad.finish(a, 1);
      await eventually(async () => ((await ngpu.tasks.get(task.id)).state === TaskState.QUEUED ? true : undefined));
      const back = await refusal(startFakeWorker(net.url, { nodeId: bad.nodeId, name: "bad", gpus: [gpu] }, { key: bad.key }));
      expect(back.code).toBe(Code.PermissionDenied);
      expect(back.rawMessage).toMatch(/revoked by the operator \(sent forged results\)/);
      await ngpu.tasks.cancel(task.id);
    } finally {
      bad.kill();
    }
  });
});
