import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiKey } from "../../control-plane/db/credentials.js";
import { resolveKeyAppIds } from "../../control-plane/db/migrations/security.js";
import type { ControlPlane } from "../../control-plane/control-plane.js";
import { Code, ConnectError, KeyScope, type NgpuClient, TaskState } from "../../sdk/index.js";
import { startTestNetwork, type TestNetwork } from "../helpers/network.js";
import { builtin, client } from "../helpers/sdk.js";
import { eventually } from "../helpers/workers.js";
import { runCli } from "../helpers/cli.js";


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
    expect((await failure(inv.apps.deploy({ name: "x", runtime: builtin("echo") }))).rawMessage).toMatch(/is an INVOKE key for echo$/);
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

  it("an invoke key is bound to app ids: another workspace's app of the same name needs naming explicitly", async () => {
    const author = await net.newWorkspace();
    const authorApi = as(author.apiKey);
    const { app: theirs } = await authorApi.apps.deploy({ name: "echo", runtime: builtin("echo") });
    await authorApi.apps.update({ app: "echo", public: true, callFeeNanoUsd: 5_000_000 });
    const created = await owner.keys.create({ name: "only-my-echo", scope: "invoke", apps: ["echo"] });
    const ownEcho = (await owner.apps.get("echo")).id;
    expect(created.key.appIds).toEqual([ownEcho]);
    const mine = as(created.secret);
    for (const app of [`${author.workspaceId}/echo`, theirs.id]) {
      const err = await failure(mine.tasks.run({ app, input: {} }, { waitMs: 1 }));
      expect(err.code).toBe(Code.PermissionDenied);
    }
    expect((await mine.tasks.submit({ app: "echo", input: {} })).task.appId).toBe(ownEcho);
    // Named explicitly, the published app is allowed, and only it.
    const explicit = await owner.keys.create({ scope: "invoke", apps: [`${author.workspaceId}/echo`] });
    expect(explicit.key.apps).toEqual([`${author.workspaceId}/echo`]);
    expect(explicit.key.appIds).toEqual([theirs.id]);
    const theirsOnly = as(explicit.secret);
    expect((await theirsOnly.tasks.submit({ app: theirs.id, input: {} })).task.appId).toBe(theirs.id);
    expect((await failure(theirsOnly.tasks.submit({ app: "echo", input: {} }))).code).toBe(Code.PermissionDenied);
    // A key made before apps were bound by id keeps working on its own workspace's app of that name (migration 0304).
    const legacy = await createApiKey(net.cp.db, net.workspaceId, { scope: "INVOKE", appNames: ["echo"] });
    await resolveKeyAppIds(net.cp.db);
    const old = as(legacy.key);
    expect((await old.tasks.submit({ app: "echo", input: {} })).task.appId).toBe(ownEcho);
    expect((await failure(old.tasks.submit({ app: theirs.id, input: {} }))).code).toBe(Code.PermissionDenied);
  });

  it("a widget key sees its apps' tasks without input or output, their usage, and nothing else", async () => {
    const { task } = await owner.tasks.submit({ app: "echo", input: { secret: "customer data" }, labels: { user: "u1" } });
    const { task: other } = await owner.tasks.submit({ app: "other", input: {} });
    const created = await owner.keys.create({ name: "shop widget", scope: "widget", apps: ["echo"], expiresAt: Date.now() + 3600_000 });
    expect(created.key.scope).toBe(KeyScope.WIDGET);
    const widget = as(created.secret);
    const seen = await widget.tasks.get(task.id);
    expect(seen.state).toBe(TaskState.QUEUED);
    expect(seen.input).toBeUndefined();
    expect(seen.labels).toEqual({});
    for await (const event of widget.tasks.watch(task.id)) {
      expect(event.case).toBe("task");
      expect(event.case === "task" && event.value.input).toBeUndefined();
      break;
    }
    const now = Date.now();
    const summary = await widget.usage.summary({ start: new Date(now - 3_600_000), end: new Date(now + 60_000), granularity: "hour", groupBy: "app" });
    expect(summary.totals?.submitted).toBeGreaterThanOrEqual(1n);
    expect(new Set(summary.buckets.flatMap((b) => b.groups.map((g) => g.key)))).toEqual(new Set([task.appId]));
    expect((await widget.apps.list()).apps.map((a) => [a.name, a.env])).toEqual([["echo", {}]]);
    for (const call of [
      () => widget.tasks.get(other.id),
      () => widget.tasks.list(),
      () => widget.tasks.submit({ app: "echo", input: {} }),
      () => widget.tasks.cancel(task.id),
      () => widget.apps.get("echo"),
      () => widget.webhooks.list(),
      () => widget.webhooks.deliveries(),
      () => widget.receipts.fetch(),
      () => widget.limits.get(),
      () => widget.keys.list(),
      () => widget.nodes.list(),
      () => widget.usage.records({ start: new Date(now - 3_600_000), end: new Date(now + 60_000) }),
      () => widget.usage.summary({ start: new Date(now - 3_600_000), end: new Date(now + 60_000), granularity: "hour", app: "other" }),
    ]) {
      const err = await failure(call);
      expect(err.code, String(call)).toBe(Code.PermissionDenied);
    }
  });

  it("checks key requests field by field", async () => {
    const cases: Array<[() => Promise<unknown>, RegExp]> = [
      [() => owner.keys.create({ scope: "invoke" }), /^apps: INVOKE keys need at least one app/],
      [() => owner.keys.create({ scope: "widget" }), /^apps: WIDGET keys need at least one app/],
      [() => owner.keys.create({ scope: "full", apps: ["echo"] }), /^apps: only INVOKE and WIDGET keys name apps/],
      [() => owner.keys.create({ name: "x".repeat(129) }), /^name: must be at most 128/],
      [() => owner.keys.revoke(""), /^key_id: is required/],
    ];
    for (const [call, message] of cases) {
      const err = await failure(call);
      expect(err.code).toBe(Code.InvalidArgument);
      expect(err.rawMessage).toMatch(message);
    }
    expect((await failure(owner.keys.revoke("key_00000000000000000000000000"))).code).toBe(Code.NotFound);
    // Apps are resolved when the key is made: an unknown one is refused, naming the field.
    for (const apps of [["nonexistent"], ["echo", "Not An App"]]) {
      const err = await failure(owner.keys.create({ scope: "invoke", apps }));
      expect(err.code).toBe(Code.NotFound);
      expect(err.rawMessage).toMatch(/^apps\[\d\]: app ".*" not found/);
    }
    // Another workspace's key is not found, never revoked.
    const other = await net.newWorkspace();
    const otherKeyId = other.apiKey.split(".")[0]!;
    expect((await failure(owner.keys.revoke(otherKeyId))).code).toBe(Code.NotFound);
    await as(other.apiKey).apps.list();
  });

  it("ngpu keys create / list / revoke", async () => {
    const run = (args: string[]) => runCli(args, { connection: net });
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
