import type { Command } from "commander";
import { create } from "@bufbuild/protobuf";
import { SubmitTaskResponseSchema } from "../../sdk/index.js";
import { messageJson, println, printJson, wantsJson, type CliContext } from "../context.js";
import { buildTaskInput } from "../input.js";
import { parseDuration, parseInteger, parseKeyValues, usdFlag } from "../parse.js";
import { followTask } from "./follow.js";
import { collect } from "./options.js";
import { parseWebhookEvents } from "./webhooks.js";

interface SubmitFlags {
  readonly input?: string[];
  readonly inputJson?: string;
  readonly idempotencyKey?: string;
  readonly priority?: string;
  readonly label?: string[];
  readonly timeout?: string;
  readonly wait?: boolean;
  readonly waitTimeout?: string;
  readonly outputDir?: string;
  readonly webhook?: string;
  readonly webhookEvents?: string;
  readonly maxCostUsd?: string;
}

export function registerSubmitCommand(program: Command, ctx: CliContext): void {
  program
    .command("submit")
    .description("submit a task to an app; with --wait, follow it and print its output")
    .argument("<app>", "app name or id")
    .option("--input <key=value>", "an input field; the value is JSON when it parses as JSON, else a string; key=@file sends a file as a data: URI (repeatable)", collect)
    .option("--input-json <json|@file>", "the whole input as a JSON object, or @file.json (--input fields go on top)")
    .option("--idempotency-key <key>", "a repeat with the same key returns the first task")
    .option("--priority <n>", "higher runs first, -1000..1000")
    .option("--label <key=value>", "a label to filter by later (repeatable)", collect)
    .option("--timeout <duration>", "execution timeout of this task, e.g. 10m (default: the app's)")
    .option("--wait", "wait for the end, showing progress; exit 0 only if it succeeded")
    .option("--wait-timeout <duration>", "with --wait: stop waiting after this long (the task keeps running)")
    .option("--output-dir <dir>", "save files (data: URIs) of the output into this directory; implies --wait")
    .option("--max-cost-usd <usd>", "spend cap of this task, e.g. 0.50, a published app's per-call fee included: at the cap it is cancelled and billed up to it")
    .option("--webhook <url>", "POST this task's events to a URL (the signing secret is printed)")
    .option("--webhook-events <list>", "with --webhook: state_changed,progress,completed (default: all)")
    .action(async (app: string, flags: SubmitFlags, command: Command) => {
      const json = wantsJson(command);
      const wait = flags.wait === true || flags.outputDir !== undefined;
      const input = await buildTaskInput({ input: flags.input, inputJson: flags.inputJson });
      const waitTimeoutMs = flags.waitTimeout === undefined ? undefined : parseDuration("--wait-timeout", flags.waitTimeout);
      const client = ctx.client(command);
      const { task, created, webhook } = await client.tasks.submit(
        {
          app,
          input,
          idempotencyKey: flags.idempotencyKey,
          priority: flags.priority === undefined ? undefined : parseInteger("--priority", flags.priority, { min: -1000, max: 1000 }),
          labels: parseKeyValues("--label", flags.label ?? []),
          timeoutMs: flags.timeout === undefined ? undefined : parseDuration("--timeout", flags.timeout),
          maxCostNanoUsd: flags.maxCostUsd === undefined ? undefined : usdFlag("--max-cost-usd", flags.maxCostUsd),
          webhook: flags.webhook === undefined ? undefined : { url: flags.webhook, events: parseWebhookEvents("--webhook-events", flags.webhookEvents) },
        },
        { signal: ctx.signal },
      );
      if (webhook && !json) println(ctx.stderr, `webhook ${webhook.id} signing secret: ${webhook.secret}`);
      if (!wait) {
        if (json) printJson(ctx, messageJson(SubmitTaskResponseSchema, create(SubmitTaskResponseSchema, { task, created, webhook })));
        else {
          // The id alone on stdout, so that `id=$(ngpu submit app)` works.
          println(ctx.stdout, task.id);
          println(ctx.stderr, created ? `queued; follow it with: ngpu tasks watch ${task.id}` : `an earlier task has this idempotency key: ${task.id}`);
        }
        return;
      }
      if (!json) println(ctx.stderr, `submitted task ${task.id}${created ? "" : " (an earlier task with this idempotency key)"}`);
      await followTask(ctx, client, task.id, { json, waitTimeoutMs, outputDir: flags.outputDir });
    });
}
