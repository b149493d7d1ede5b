// Shows a task's events while the CLI waits for it: a progress bar on a terminal,
// plain lines otherwise (logs, CI, pipes), both on stderr so stdout keeps the result.
import cliProgress from "cli-progress";
import { TaskState, taskStateName, type Progress, type Task, type TaskEvent } from "../sdk/index.js";
import { println, type OutputStream } from "./context.js";
import { progressText } from "./render.js";

export interface TaskView {
  onEvent(event: TaskEvent): void;
  /** Stops drawing (restores the cursor). Idempotent. */
  close(): void;
}

export interface TaskViewOptions {
  /** Draw a progress bar; when false, write one line per change. */
  readonly tty: boolean;
}

function stepsText(progress: Progress | undefined): string {
  return progress && progress.totalSteps > 0 ? `${progress.step}/${progress.totalSteps}` : "-";
}

export function createTaskView(stream: OutputStream, options: TaskViewOptions): TaskView {
  return options.tty ? createBarView(stream) : createLineView(stream);
}

/** "task ID: STATE (error)": how both views announce a state change. */
function stateLine(task: Task): string {
  return `task ${task.id}: ${taskStateName(task.state)}${task.error ? ` (${task.error})` : ""}`;
}

function createLineView(stream: OutputStream): TaskView {
  let state: TaskState | undefined;
  let lastProgress = "";
  return {
    onEvent(event) {
      switch (event.case) {
        case "task": {
          const task = event.value;
          if (task.state !== state) {
            state = task.state;
            println(stream, stateLine(task));
          }
          return;
        }
        case "progress": {
          const text = progressText(event.value);
          if (text !== lastProgress) println(stream, `progress: ${text}`);
          lastProgress = text;
          return;
        }
        case "log":
          println(stream, `log: ${event.value}`);
          return;
        case "output":
          println(stream, "partial output received");
          return;
      }
    },
    close() {},
  };
}

function createBarView(stream: OutputStream): TaskView {
  const multibar = new cliProgress.MultiBar(
    {
      stream,
      format: " {bar} {percentage}% | {steps} | {state} | {message}",
      hideCursor: true,
      clearOnComplete: false,
      stopOnComplete: false,
      barsize: 30,
      autopadding: true,
    },
    cliProgress.Presets.shades_classic,
  );
  let state: TaskState | undefined;
  let stopped = false;
  const payload = { steps: "-", state: "submitted", message: "" };
  const bar = multibar.create(100, 0, payload);
  return {
    onEvent(event) {
      switch (event.case) {
        case "task": {
          const task = event.value;
          if (task.state !== state) {
            state = task.state;
            multibar.log(`${stateLine(task)}\n`);
          }
          payload.state = taskStateName(task.state);
          if (task.progress) {
            payload.steps = stepsText(task.progress);
            payload.message = task.progress.message;
          }
          const percent = task.state === TaskState.SUCCEEDED ? 100 : (task.progress?.percent ?? 0);
          bar.update(Math.round(percent), payload);
          return;
        }
        case "progress":
          payload.steps = stepsText(event.value);
          payload.message = event.value.message;
          bar.update(Math.round(event.value.percent), payload);
          return;
        case "log":
          multibar.log(`${event.value}\n`);
          return;
        case "output":
          multibar.log("partial output received\n");
          return;
      }
    },
    close() {
      if (stopped) return;
      stopped = true;
      multibar.update(); // flushes lines logged since the last redraw, which stop() would drop
      multibar.stop();
    },
  };
}
