import { create } from "@bufbuild/protobuf";
import { TaskSchema, WatchTaskResponseSchema, type WatchTaskResponse } from "../../gen/ngpu/v1/task_pb.js";

/**
 * A "this task changed state, read it again" signal for watchers. It carries
 * only the id: the database is the record, and a watcher re-reads it.
 */
export function stateSignal(taskId: string): WatchTaskResponse {
  return create(WatchTaskResponseSchema, { event: { case: "task", value: create(TaskSchema, { id: taskId }) } });
}
