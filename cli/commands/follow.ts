// Following a task to its end: shared by `submit --wait` and `tasks watch`.
import { create } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  TaskSchema,
  TaskState,
  WatchTaskResponseSchema,
  taskOutput,
  taskStateName,
  type NgpuClient,
  type Task,
} from "../../sdk/index.js";
import { messageJson, println, printJson, type CliContext } from "../context.js";
import { CliError, ExitCode } from "../errors.js";
import { formatDuration } from "../format.js";
import { saveOutputFiles } from "../output-files.js";
import { outputText } from "../render.js";
import { createTaskView } from "../task-view.js";

export interface FollowOptions {
  /** Print the final task as JSON (stdout) instead of its output as text. */
  readonly json: boolean;
  /** Print every event as a JSON line on stdout, and no progress on stderr. */
  readonly events?: boolean | undefined;
  /** Stop waiting after this many ms (the task keeps running); default: no limit. */
  readonly waitTimeoutMs?: number | undefined;
  /** Save the data: URIs of the output as files in this directory. */
  readonly outputDir?: string | undefined;
}

/**
 * Waits for the task to end while showing its events, then prints the result.
 * Resolves when it SUCCEEDED; throws a CliError (exit 1) for any other end, when the
 * wait times out, and (exit 130) when interrupted.
 */
export async function followTask(ctx: CliContext, client: NgpuClient, taskId: string, options: FollowOptions): Promise<void> {
  const view = options.events ? undefined : createTaskView(ctx.stderr, { tty: ctx.stderr.isTTY === true });
  let task: Task;
  try {
    task = await client.tasks.wait(taskId, {
      signal: ctx.signal,
      timeoutMs: options.waitTimeoutMs,
      onEvent(event) {
        if (view) view.onEvent(event);
        else println(ctx.stdout, JSON.stringify(messageJson(WatchTaskResponseSchema, create(WatchTaskResponseSchema, { event }))));
      },
    });
  } catch (err) {
    view?.close();
    const hint = `it keeps running; follow it with: ngpu tasks watch ${taskId}`;
    if (ctx.signal.aborted) throw new CliError(`stopped waiting for task ${taskId}; ${hint}`, ExitCode.INTERRUPTED, { cause: err });
    if (err instanceof ConnectError && err.code === Code.DeadlineExceeded && options.waitTimeoutMs !== undefined) {
      throw new CliError(`task ${taskId} did not end within ${formatDuration(options.waitTimeoutMs)}; ${hint}`, ExitCode.FAILED, { cause: err });
    }
    throw err;
  }
  view?.close();
  await printResult(ctx, task, options);
}

async function printResult(ctx: CliContext, task: Task, options: FollowOptions): Promise<void> {
  const succeeded = task.state === TaskState.SUCCEEDED;
  let output = taskOutput(task);
  if (succeeded && output !== undefined && options.outputDir !== undefined) {
    const saved = await saveOutputFiles(output, options.outputDir);
    output = saved.output;
    // With --json, stdout holds only JSON: the paths go to stderr.
    const stream = options.json || options.events ? ctx.stderr : ctx.stdout;
    for (const file of saved.files) println(stream, `saved ${file.path}`);
  }
  if (options.json && !options.events) printJson(ctx, messageJson(TaskSchema, task));
  else if (!options.events && succeeded && output !== undefined) println(ctx.stdout, outputText(output));
  if (!succeeded) {
    throw new CliError(`task ${task.id} ${taskStateName(task.state)}${task.error ? `: ${task.error}` : ""}`, ExitCode.FAILED);
  }
}
