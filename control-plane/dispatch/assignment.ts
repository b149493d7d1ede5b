import { create } from "@bufbuild/protobuf";
import type { JsonObject } from "@bufbuild/protobuf";
import { RuntimeSchema, type Runtime } from "../../gen/ngpu/v1/app_pb.js";
import { AssignmentSchema, ConnectResponseSchema, type ConnectResponse } from "../../gen/ngpu/v1/worker_pb.js";
import type { RuntimeRow } from "../db/schema.js";

/** Everything a worker needs to run one attempt. */
export interface AttemptToDispatch {
  readonly taskId: string;
  readonly attemptId: string;
  readonly fencingToken: number;
  readonly gpuIndices: readonly number[];
  readonly timeoutMs: number;
  readonly input: Record<string, unknown>;
  readonly app: {
    readonly id: string;
    readonly name: string;
    readonly version: number;
    readonly runtime: RuntimeRow;
    readonly env: Record<string, string>;
  };
}

/** The app part of a dispatch, from a query row that joined the app (column aliases app_*). */
export function dispatchApp(row: { app_id: string; app_name: string; app_version: number; runtime: unknown; env: Record<string, string> }): AttemptToDispatch["app"] {
  return { id: row.app_id, name: row.app_name, version: row.app_version, runtime: row.runtime as RuntimeRow, env: row.env };
}

export function runtimeToProto(row: RuntimeRow): Runtime {
  switch (row.kind) {
    case "process":
      return create(RuntimeSchema, { kind: { case: "process", value: { command: row.command, workingDir: row.workingDir } } });
    case "docker":
      return create(RuntimeSchema, { kind: { case: "docker", value: { image: row.image, port: row.port } } });
    case "builtin":
      return create(RuntimeSchema, { kind: { case: "builtin", value: { name: row.name } } });
  }
}

export function assignmentMessage(a: AttemptToDispatch): ConnectResponse {
  return create(ConnectResponseSchema, {
    message: {
      case: "assignment",
      value: create(AssignmentSchema, {
        taskId: a.taskId,
        attemptId: a.attemptId,
        fencingToken: BigInt(a.fencingToken),
        gpuIndices: [...a.gpuIndices],
        timeoutMs: BigInt(a.timeoutMs),
        input: a.input as JsonObject,
        app: { id: a.app.id, name: a.app.name, version: a.app.version, runtime: runtimeToProto(a.app.runtime), env: a.app.env },
      }),
    },
  });
}

export function drainMessage(graceMs: number): ConnectResponse {
  return create(ConnectResponseSchema, { message: { case: "drain", value: { graceMs } } });
}

export function cancelMessage(taskId: string, attemptId: string, reason: string): ConnectResponse {
  return create(ConnectResponseSchema, { message: { case: "cancel", value: { taskId, attemptId, reason } } });
}
