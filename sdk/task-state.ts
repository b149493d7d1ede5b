import { TaskState } from "../gen/ngpu/v1/task_pb.js";

/** The states a task never leaves. A task reaches exactly one of them. */
export const TERMINAL_TASK_STATES: ReadonlySet<TaskState> = new Set([
  TaskState.SUCCEEDED,
  TaskState.FAILED,
  TaskState.CANCELLED,
  TaskState.TIMED_OUT,
  TaskState.EXPIRED,
]);

/** True when a task in `state` has ended and will not change again. */
export function isTerminal(state: TaskState): boolean {
  return TERMINAL_TASK_STATES.has(state);
}

/**
 * The short lowercase name of a task state: `TaskState.TIMED_OUT` → `"timed_out"`.
 * Unknown numbers (a newer server) come back as `"state_<n>"`.
 */
export function taskStateName(state: TaskState): string {
  const name = TaskState[state] as string | undefined;
  return name === undefined ? `state_${state}` : name.toLowerCase();
}
