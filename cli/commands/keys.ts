import type { Command } from "commander";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { ApiKeySchema, KeyScope, type ApiKey } from "../../sdk/index.js";
import { messageJson, println, printJson, wantsJson, type CliContext } from "../context.js";
import { UsageError } from "../errors.js";
import { formatAge, formatTable, formatTime } from "../format.js";
import { parseExpiry, parseInteger } from "../parse.js";
import { collect } from "./options.js";

const SCOPE_NAMES = ["full", "invoke", "read-only", "widget"] as const;

function scopeText(key: ApiKey): string {
  if (key.scope === KeyScope.INVOKE) return `invoke: ${key.apps.join(", ")}`;
  if (key.scope === KeyScope.WIDGET) return `widget: ${key.apps.join(", ")}`;
  return key.scope === KeyScope.READ_ONLY ? "read-only" : "full";
}

function statusText(key: ApiKey, now: Date): string {
  if (key.revokeTime) return `revoked ${formatTime(timestampDate(key.revokeTime))}`;
  if (key.expireTime && timestampDate(key.expireTime) <= now) return `expired ${formatTime(timestampDate(key.expireTime))}`;
  return key.expireTime ? `active until ${formatTime(timestampDate(key.expireTime))}` : "active";
}

export function registerKeyCommands(program: Command, ctx: CliContext): void {
  const keys = program.command("keys").description("API keys of your workspace: scopes, expiry, revocation");

  keys
    .command("create")
    .description("create an API key; its secret is printed once")
    .option("--name <name>", "a name for people", "")
    .option("--scope <scope>", `what it may do: ${SCOPE_NAMES.join(", ")}`, "full")
    .option("--app <name>", "for --scope invoke or widget: an app of yours, or a published one as <workspace>/<app> (repeatable)", collect)
    .option("--expires <when>", "a duration from now (30d, 12h) or an ISO time; default never")
    .action(async (flags: { name: string; scope: string; app?: string[]; expires?: string }, command: Command) => {
      if (!(SCOPE_NAMES as readonly string[]).includes(flags.scope)) throw new UsageError(`--scope: must be one of ${SCOPE_NAMES.join(", ")}`);
      const scope = flags.scope as (typeof SCOPE_NAMES)[number];
      if ((scope === "invoke" || scope === "widget") && (flags.app ?? []).length === 0) throw new UsageError(`--scope ${scope} needs at least one --app`);
      const created = await ctx.client(command).keys.create(
        { name: flags.name, scope, apps: flags.app ?? [], ...(flags.expires ? { expiresAt: parseExpiry("--expires", flags.expires) } : {}) },
        { signal: ctx.signal },
      );
      if (wantsJson(command)) {
        printJson(ctx, { key: messageJson(ApiKeySchema, created.key), secret: created.secret });
      } else {
        println(ctx.stdout, `created key ${created.key.id} (${scopeText(created.key)}, ${statusText(created.key, new Date())})`);
        println(ctx.stdout, created.secret);
        println(ctx.stderr, "keep the secret now: it cannot be shown again");
      }
    });

  keys
    .command("list")
    .description("list the workspace's keys (never their secrets)")
    .option("--all", "include revoked and expired keys")
    .action(async (flags: { all?: boolean }, command: Command) => {
      const list = await ctx.client(command).keys.list(flags.all === true, { signal: ctx.signal });
      if (wantsJson(command)) {
        printJson(ctx, { keys: list.map((k) => messageJson(ApiKeySchema, k)) });
        return;
      }
      const now = new Date();
      const rows = list.map((k) => [
        k.id,
        k.name,
        scopeText(k),
        statusText(k, now),
        k.lastUsedTime ? formatAge(timestampDate(k.lastUsedTime), now) : "never",
      ]);
      println(ctx.stdout, rows.length === 0 ? "no keys" : formatTable(["ID", "NAME", "SCOPE", "STATUS", "LAST USED"], rows));
    });

  keys
    .command("revoke")
    .description("revoke a key: it stops working at once")
    .argument("<id>", "key id (key_…)")
    .action(async (id: string, _flags: unknown, command: Command) => {
      const key = await ctx.client(command).keys.revoke(id, { signal: ctx.signal });
      if (wantsJson(command)) printJson(ctx, messageJson(ApiKeySchema, key));
      else println(ctx.stdout, `key ${key.id} revoked`);
    });

  keys
    .command("enrollment-token")
    .description("create an enrollment token admitting new workers, through the API (operator key); prints it once")
    .option("--name <name>", "a name for the record", "")
    .option("--uses <n>", "how many new workers it admits", "1")
    .option("--expires <when>", "a duration from now (24h) or an ISO time; default never")
    .action(async (flags: { name: string; uses: string; expires?: string }, command: Command) => {
      const maxUses = parseInteger("--uses", flags.uses, { min: 1, max: 10_000 });
      const created = await ctx.client(command).keys.createEnrollmentToken(
        { name: flags.name, maxUses, ...(flags.expires ? { expiresAt: parseExpiry("--expires", flags.expires) } : {}) },
        { signal: ctx.signal },
      );
      if (wantsJson(command)) printJson(ctx, created);
      else {
        println(ctx.stdout, created.token);
        println(ctx.stderr, `enrollment token ${created.tokenId} (${maxUses} use${maxUses === 1 ? "" : "s"}): keep it now, it cannot be shown again`);
      }
    });
}
