import type { Command } from "commander";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { WebhookDeliverySchema, WebhookDeliveryState, WebhookEventType, WebhookSchema, type WebhookDelivery } from "../../sdk/index.js";
import { CliError, ExitCode } from "../errors.js";
import { messageJson, println, printJson, wantsJson, type CliContext } from "../context.js";
import { formatTable, formatTime } from "../format.js";

const EVENT_NAMES: Record<string, WebhookEventType> = {
  state_changed: WebhookEventType.STATE_CHANGED,
  progress: WebhookEventType.PROGRESS,
  completed: WebhookEventType.COMPLETED,
};

/** "state_changed,completed" → event types; "" → none (the server's default: all). */
export function parseWebhookEvents(flag: string, text: string | undefined): WebhookEventType[] {
  if (text === undefined || text.trim() === "") return [];
  return text.split(",").map((word) => {
    const type = EVENT_NAMES[word.trim().toLowerCase().replace(/^task\./, "")];
    if (type === undefined) throw new CliError(`${flag}: ${JSON.stringify(word)} is not one of ${Object.keys(EVENT_NAMES).join(", ")}`, ExitCode.USAGE);
    return type;
  });
}

function deliveryStateName(state: WebhookDeliveryState): string {
  return (WebhookDeliveryState[state] ?? "UNSPECIFIED").toLowerCase();
}

function renderDeliveries(deliveries: readonly WebhookDelivery[]): string {
  return formatTable(
    ["ID", "TYPE", "TASK", "STATE", "ATTEMPTS", "LAST", "CREATED"],
    deliveries.map((d) => [
      d.id,
      d.type,
      d.taskId,
      deliveryStateName(d.state),
      String(d.attemptCount),
      d.lastError || (d.lastStatusCode ? `HTTP ${d.lastStatusCode}` : ""),
      formatTime(d.createTime ? timestampDate(d.createTime) : undefined),
    ]),
  );
}

export function registerWebhookCommands(program: Command, ctx: CliContext): void {
  const webhooks = program.command("webhooks").description("POST task events to your server: subscriptions, the delivery log, replay");

  webhooks
    .command("create")
    .description("send the events of every task of an app to a URL; prints the signing secret once")
    .argument("<app>", "app name or id")
    .argument("<url>", "http:// or https:// URL")
    .option("--events <list>", "comma-separated: state_changed,progress,completed (default: all)")
    .action(async (app: string, url: string, flags: { events?: string }, command: Command) => {
      const hook = await ctx.client(command).webhooks.create({ app, url, events: parseWebhookEvents("--events", flags.events) }, { signal: ctx.signal });
      if (wantsJson(command)) printJson(ctx, messageJson(WebhookSchema, hook));
      else {
        println(ctx.stdout, hook.id);
        println(ctx.stderr, `signing secret (shown once; verify requests with it): ${hook.secret}`);
      }
    });

  webhooks
    .command("list")
    .description("list the workspace's webhooks")
    .option("--app <app>", "only this app's")
    .action(async (flags: { app?: string }, command: Command) => {
      const { webhooks: found } = await ctx.client(command).webhooks.list({ app: flags.app ?? "", pageSize: 500 }, { signal: ctx.signal });
      if (wantsJson(command)) printJson(ctx, { webhooks: found.map((w) => messageJson(WebhookSchema, w)) });
      else if (found.length === 0) println(ctx.stderr, "no webhooks");
      else println(ctx.stdout, formatTable(["ID", "FOR", "URL", "EVENTS"], found.map((w) => [w.id, w.appId || w.taskId, w.url, w.events.map((e) => WebhookEventType[e]?.toLowerCase()).join(",")])));
    });

  webhooks
    .command("delete")
    .description("stop a webhook (pending deliveries are dropped; the log stays)")
    .argument("<id>", "webhook id")
    .action(async (id: string, _flags: unknown, command: Command) => {
      await ctx.client(command).webhooks.delete(id, { signal: ctx.signal });
      if (wantsJson(command)) printJson(ctx, {});
      else println(ctx.stdout, `webhook ${id} deleted`);
    });

  webhooks
    .command("deliveries")
    .description("the delivery log, newest first")
    .option("--webhook <id>", "only this webhook's")
    .option("--task <id>", "only about this task")
    .option("--failed", "only deliveries that ran out of tries")
    .action(async (flags: { webhook?: string; task?: string; failed?: boolean }, command: Command) => {
      const { deliveries } = await ctx.client(command).webhooks.deliveries(
        { webhookId: flags.webhook ?? "", taskId: flags.task ?? "", states: flags.failed ? [WebhookDeliveryState.FAILED] : [], pageSize: 100 },
        { signal: ctx.signal },
      );
      if (wantsJson(command)) printJson(ctx, { deliveries: deliveries.map((d) => messageJson(WebhookDeliverySchema, d)) });
      else if (deliveries.length === 0) println(ctx.stderr, "no deliveries");
      else println(ctx.stdout, renderDeliveries(deliveries));
    });

  webhooks
    .command("delivery")
    .description("show a delivery: every attempt, and the body sent")
    .argument("<id>", "delivery id")
    .action(async (id: string, _flags: unknown, command: Command) => {
      const d = await ctx.client(command).webhooks.getDelivery(id, { signal: ctx.signal });
      if (wantsJson(command)) return printJson(ctx, messageJson(WebhookDeliverySchema, d));
      println(ctx.stdout, renderDeliveries([d]));
      println(ctx.stdout);
      println(
        ctx.stdout,
        formatTable(
          ["#", "TIME", "STATUS", "ERROR", "MS"],
          d.attempts.map((a) => [String(a.number), formatTime(a.time ? timestampDate(a.time) : undefined), a.statusCode ? String(a.statusCode) : "-", a.error, String(a.durationMs)]),
        ),
      );
      println(ctx.stdout);
      println(ctx.stdout, d.body);
    });

  webhooks
    .command("replay")
    .description("send a delivery again (with a fresh signature)")
    .argument("<id>", "delivery id")
    .action(async (id: string, _flags: unknown, command: Command) => {
      const d = await ctx.client(command).webhooks.replay(id, { signal: ctx.signal });
      if (wantsJson(command)) printJson(ctx, messageJson(WebhookDeliverySchema, d));
      else println(ctx.stdout, `delivery ${d.id} queued again`);
    });
}
