import { toJson, type JsonValue } from "@bufbuild/protobuf";
import { ValueSchema, type Value } from "@bufbuild/protobuf/wkt";
import type { Task } from "../gen/ngpu/v1/task_pb.js";

/** A `google.protobuf.Value` (a task's output, a partial output event) as plain JSON. */
export function valueToJson(value: Value): JsonValue {
  return toJson(ValueSchema, value);
}

/** The task's output as plain JSON, or undefined while it has none. */
export function taskOutput(task: Task): JsonValue | undefined {
  return task.output === undefined ? undefined : valueToJson(task.output);
}
