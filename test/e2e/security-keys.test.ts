import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiKey } from "../../control-plane/db/credentials.js";
import type { ControlPlane } from "../../control-plane/control-plane.js";
import { Code, ConnectError, KeyScope, type NgpuClient, TaskState } from "../../sdk/index.js";
import { startTestNetwork, type TestNetwork } from "../helpers/network.js";
import { builtin, client } from "../helpers/sdk.js";
import { eventually } from "../helpers/workers.js";

const repoRoot = fileURLToPath(new URL("../..", import.meta.url));

/** The ConnectError a call fails with (fails the test if it succeeds). */
async function failure(call: Promise<unknown> | (() => Promise<unknown>)): Promise<ConnectError> {
  try {
    await (typeof call === "function" ? call() : call);
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("the call succeeded; expected it to fail");
}

describe("security: API keys (scopes, expiry, revocation on every replica)", () => {
  let net: TestNetwork;
  let replica: ControlPlane;
  let owner: NgpuClient;
  const clients: NgpuClient[] = [];
  const as = (secret: string, url = net.url) => {
    const c = client(url, secret);
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    net = await startTestNetwork();
    replica = await net.addReplica();
    owner = as(net.apiKey);
    // No worker: tasks stay queued, which is all these checks need.
    await owner.apps.deploy({ name: "echo", runtime: builtin("echo") });
    await owner.apps.deploy({ name: "other", runtime: builtin("echo") });
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await net.close();
  });

  it("shows a new key's secret once, stores only its hash, and lists it without the secret", async () => {
    const created = await owner.keys.create({ name: "ci", scope: "full" });
    expect(created.secret).toMatch(/^key_[0-9a-z]{26}\.[A-Za-z0-9_-]{43}$/);
    expect(created.secret.startsWith(`${created.key.id}.`)).toBe(true);
    const stored = await net.cp.db.selectFrom("api_keys").selectAll().where("id", "=", created.key.id).executeTakeFirstOrThrow();
    expect(stored.secret_hash).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify(stored)).not.toContain(created.secret.split(".")[1]);
    const listed = await owner.keys.list();
    const mine = listed.find((k) => k.id === created.key.id)!;
    expect(mine).toMatchObject({ name: "ci", scope: KeyScope.FULL });
    expect(JSON.stringify(listed, (_k, v) => (typeof v === "bigint" ? String(v) : v))).not.toContain(created.secret.split(".")[1]);
  });

  it("records when a key was last used", async () => {
    const created = await owner.keys.create({ name: "used", scope: "read-only" });
    expect(created.key.lastUsedTime).toBeUndefined();
    await as(created.secret).apps.list();
    const listed = (await owner.keys.list()).find((k) => k.id === created.key.id)!;
    expect(listed.lastUsedTime).toBeDefined();
  });

  it("a revoked key fails at once, on every replica", async () => {
    const created = await owner.keys.create({ name: "to revoke", scope: "full" });
    const onReplica = as(created.secret, replica.url);
    await onReplica.apps.list(); // works before
    await owner.keys.revoke(created.key.id); // through the first replica
    const err = await failure(onReplica.apps.list());
    expect(err.code).toBe(Code.Unauthenticated);
    expect(err.rawMessage).toMatch(/revoked/);
    const err2 = await failure(as(created.secret).tasks.submit({ app: "echo", input: {} }));
    expect(err2.code).toBe(Code.Unauthenticated);
    // Listed as revoked among inactive keys only.
    expect((await owner.keys.list()).some((k) => k.id === created.key.id)).toBe(false);
    expect((await owner.keys.list(true)).find((k) => k.id === created.key.id)?.revokeTime).toBeDefined();
  });

  it("an expired key fails; an expiry in the past is refused when creating one", async () => {
    const { key } = await createApiKey(net.cp.db, net.workspaceId, { name: "old", expiresAt: new Date(Date.now() - 1000) });
    const err = await failure(as(key).apps.list());
    expect(err.code).toBe(Code.Unauthenticated);
    expect(err.rawMessage).toMatch(/expired at/);
    const bad = await failure(owner.keys.create({ scope: "full", expiresAt: Date.now() - 60_000 }));
    expect(bad.code).toBe(Code.InvalidArgument);
    expect(bad.rawMessage).toMatch(/^expire_time: must be in the future/);
    // A key that expires shortly works until then, and not after.
    const soon = await owner.keys.create({ scope: "read-only", expiresAt: Date.now() + 1500 });
    const c = as(soon.secret);
    await c.apps.list();
    const later = await eventually(async () => {
      const e = await failure(c.apps.list()).catch(() => undefined);
      return e?.code === Code.Unauthenticated ? e : undefined;
    }, 10_000, "the key to expire");
    expect(later.rawMessage).toMatch(/expired/);
  });

  it("a read-only key reads but cannot submit, cancel, deploy or manage keys", async () => {
    const { task } = await owner.tasks.submit({ app: "echo", input: { n: 1 } });
    const ro = as((await owner.keys.create({ name: "widget", scope: "read-only" })).secret);
    expect((await ro.tasks.get(task.id)).id).toBe(task.id);
    expect((await ro.tasks.list()).tasks.map((t) => t.id)).toContain(task.id);
    expect((await ro.apps.list()).apps.map((a) => a.name).sort()).toEqual(["echo", "other"]);
    expect((await ro.nodes.list()).nodes).toEqual([]);
    const before = await net.cp.db.selectFrom("tasks").select((eb) => eb.fn.countAll<string>().as("n")).executeTakeFirstOrThrow();
    for (const call of [
      () => ro.tasks.submit({ app: "echo", input: {} }),
      () => ro.tasks.run({ app: "echo", input: {} }),
      () => ro.tasks.cancel(task.id),
      () => ro.apps.deploy({ name: "sneaky", runtime: builtin("echo") }),
      () => ro.apps.update({ app: "echo", description: "changed" }),
      () => ro.keys.create({ scope: "full" }),
      () => ro.keys.list(),
    ]) {
      const err = await failure(call);
      expect(err.code).toBe(Code.PermissionDenied);
      expect(err.rawMessage).toMatch(/READ_ONLY key/);
    }
    const after = await net.cp.db.selectFrom("tasks").select((eb) => eb.fn.countAll<string>().as("n")).executeTakeFirstOrThrow();
    expect(after.n).toBe(before.n);
    expect((await owner.tasks.get(task.id)).state).toBe(TaskState.QUEUED);
  });

  it("an app-scoped (invoke) key works on its apps and cannot touch other apps", async () => {
    const created = await owner.keys.create({ name: "echo only", scope: "invoke", apps: ["echo"] });
    expect(created.key.apps).toEqual(["echo"]);
    const inv = as(created.secret);
    const { task: mine } = await inv.tasks.submit({ app: "echo", input: { x: 1 } });
    expect((await inv.tasks.get(mine.id)).id).toBe(mine.id);
    const { task: theirs } = await owner.tasks.submit({ app: "other", input: {} });

    const submit = await failure(inv.tasks.submit({ app: "other", input: {} }));
    expect(submit.code).toBe(Code.PermissionDenied);
    expect(submit.rawMessage).toMatch(/app "other"/);
    for (const call of [() => inv.tasks.get(theirs.id), () => inv.tasks.cancel(theirs.id), () => inv.apps.get("other"), () => inv.tasks.list({ app: "other" })]) {
      const err = await failure(call);
      expect(err.code).toBe(Code.PermissionDenied);
      expect(err.rawMessage).toMatch(/"other"/);
    }
    const watch = await failure((async () => {
      for await (const _ of inv.tasks.watch(theirs.id)) break;
    })());
    expect(watch.code).toBe(Code.PermissionDenied);
    // Lists show only its apps and their tasks.
    expect((await inv.apps.list()).apps.map((a) => a.name)).toEqual(["echo"]);
    const listed = (await inv.tasks.list()).tasks;
    expect(listed.map((t) => t.id)).toContain(mine.id);
    expect(listed.map((t) => t.id)).not.toContain(theirs.id);
    // Not the workspace's settings.
    expect((await failure(inv.apps.deploy({ name: "echo", runtime: builtin("sleep") }))).code).toBe(Code.PermissionDenied);
    expect((await failure(inv.keys.create({ scope: "full" }))).code).toBe(Code.PermissionDenied);
    // Its own task it may cancel.
    expect((await inv.tasks.cancel(mine.id)).id).toBe(mine.id);
  });

  it("checks key requests field by field", async () => {
    const cases: Array<[() => Promise<unknown>, RegExp]> = [
      [() => owner.keys.create({ scope: "invoke" }), /^apps: an INVOKE key needs at least one app name/],
      [() => owner.keys.create({ scope: "full", apps: ["echo"] }), /^apps: only an INVOKE key names apps/],
      [() => owner.keys.create({ scope: "invoke", apps: ["Not An App"] }), /^apps\[0\]: is not an app name/],
      [() => owner.keys.create({ name: "x".repeat(129) }), /^name: must be at most 128/],
      [() => owner.keys.revoke(""), /^key_id: is required/],
    ];
    for (const [call, message] of cases) {
      const err = await failure(call);
      expect(err.code).toBe(Code.InvalidArgument);
      expect(err.rawMessage).toMatch(message);
    }
    expect((await failure(owner.keys.revoke("key_00000000000000000000000000"))).code).toBe(Code.NotFound);
    // Another workspace's key is not found, never revoked.
    const other = await net.newWorkspace();
    const otherKeyId = other.apiKey.split(".")[0]!;
    expect((await failure(owner.keys.revoke(otherKeyId))).code).toBe(Code.NotFound);
    await as(other.apiKey).apps.list();
  });

  it("ngpu keys create / list / revoke", async () => {
    const run = (args: string[]) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
        const child = spawn(process.execPath, ["--import", "tsx", "cli/main.ts", "--url", net.url, "--api-key", net.apiKey, ...args], {
          cwd: repoRoot,
          env: { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("NGPU_"))) },
          stdio: ["ignore", "pipe", "pipe"],
        });
        let stdout = "";
        let stderr = "";
        child.stdout.setEncoding("utf8").on("data", (c: string) => (stdout += c));
        child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
        child.on("error", reject);
        child.on("close", (code) => resolve({ code, stdout, stderr }));
      });
    const created = await run(["--json", "keys", "create", "--name", "from-cli", "--scope", "invoke", "--app", "echo", "--expires", "30d"]);
    expect(created.code, created.stderr).toBe(0);
    const { key, secret } = JSON.parse(created.stdout) as { key: { id: string; scope: string; apps: string[]; expireTime: string }; secret: string };
    expect(key).toMatchObject({ scope: "KEY_SCOPE_INVOKE", apps: ["echo"] });
    expect(Date.parse(key.expireTime)).toBeGreaterThan(Date.now() + 29 * 86_400_000);
    await as(secret).tasks.submit({ app: "echo", input: {} });
    const listed = await run(["keys", "list"]);
    expect(listed.stdout).toMatch(new RegExp(`${key.id}\\s+from-cli\\s+invoke: echo\\s+active until`));
    const revoked = await run(["keys", "revoke", key.id]);
    expect(revoked.stdout).toContain(`key ${key.id} revoked`);
    expect((await failure(as(secret).apps.list())).code).toBe(Code.Unauthenticated);
  });
});
