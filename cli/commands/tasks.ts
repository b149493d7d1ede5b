import type { Command } from "commander";
import { TaskSchema, taskStateName } from "../../sdk/index.js";
import { messageJson, println, printJson, wantsJson, type CliContext } from "../context.js";
import { parseInteger, parseKeyValues, parseTaskStates } from "../parse.js";
import { renderTask, renderTaskTable } from "../render.js";
import { followTask } from "./follow.js";
import { collect } from "./options.js";

/** Tasks `tasks list` shows when --limit is not given. */
export const DEFAULT_LIST_LIMIT = 20;

interface ListFlags {
  readonly app?: string;
  readonly state?: string;
  readonly limit?: string;
  readonly label?: string[];
}

export function registerTaskCommands(program: Command, ctx: CliContext): void {
  const tasks = program.command("tasks").description("inspect, follow and cancel tasks");

  tasks
    .command("get")
    .description("show a task")
    .argument("<id>", "task id")
    .action(async (id: string, _flags: unknown, command: Command) => {
      const task = await ctx.client(command).tasks.get(id, { signal: ctx.signal });
      if (wantsJson(command)) printJson(ctx, messageJson(TaskSchema, task));
      else println(ctx.stdout, renderTask(task, new Date()));
    });

  tasks
    .command("watch")
    .description("follow a task to its end; with --json, print each event as a JSON line; exit 0 only if it succeeded")
    .argument("<id>", "task id")
    .option("--output-dir <dir>", "save files (data: URIs) of the output into this directory")
    .action(async (id: string, flags: { outputDir?: string }, command: Command) => {
      const json = wantsJson(command);
      await followTask(ctx, ctx.client(command), id, { json, events: json, outputDir: flags.outputDir });
    });

  tasks
    .command("cancel")
    .description("cancel a task (a task that already ended is left as it is)")
    .argument("<id>", "task id")
    .action(async (id: string, _flags: unknown, command: Command) => {
      const task = await ctx.client(command).tasks.cancel(id, { signal: ctx.signal });
      if (wantsJson(command)) printJson(ctx, messageJson(TaskSchema, task));
      else println(ctx.stdout, `task ${task.id}: ${taskStateName(task.state)}`);
    });

  tasks
    .command("list")
    .description("list tasks, newest first")
    .option("--app <app>", "only tasks of this app (name or id)")
    .option("--state <states>", "only tasks in these states, comma-separated: queued,assigned,starting,running,succeeded,failed,cancelled,timed_out,expired")
    .option("--limit <n>", `show at most n tasks (default ${DEFAULT_LIST_LIMIT})`)
    .option("--label <key=value>", "only tasks with this label (repeatable)", collect)
    .action(async (flags: ListFlags, command: Command) => {
      const limit = flags.limit === undefined ? DEFAULT_LIST_LIMIT : parseInteger("--limit", flags.limit, { min: 1, max: 100_000 });
      const filter = {
        app: flags.app,
        states: flags.state === undefined ? undefined : parseTaskStates("--state", flags.state),
        labels: parseKeyValues("--label", flags.label ?? []),
        pageSize: Math.min(limit, 500),
      };
      const found = [];
      for await (const task of ctx.client(command).tasks.listAll(filter, { signal: ctx.signal })) {
        found.push(task);
        if (found.length >= limit) break;
      }
      if (wantsJson(command)) printJson(ctx, { tasks: found.map((t) => messageJson(TaskSchema, t)) });
      else if (found.length === 0) println(ctx.stderr, "no tasks");
      else println(ctx.stdout, renderTaskTable(found, new Date()));
    });
}
