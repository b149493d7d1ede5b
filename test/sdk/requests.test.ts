import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { DeployAppRequestSchema, RuntimeSchema, UpdateAppRequestSchema } from "../../gen/ngpu/v1/app_pb.js";
import { SubmitTaskRequestSchema } from "../../gen/ngpu/v1/task_pb.js";
import { isTerminal, paginate, taskStateName, TaskState } from "../../sdk/index.js";
import { deployAppRequest, submitTaskRequest, toInt64, updateAppRequest } from "../../sdk/requests.js";

describe("request conversion", () => {
  it("accepts numbers for 64-bit fields, refusing unsafe ones", () => {
    expect(toInt64(5, "x")).toBe(5n);
    expect(toInt64(2n ** 63n - 1n, "x")).toBe(2n ** 63n - 1n);
    expect(() => toInt64(1.5, "timeoutMs")).toThrow(/timeoutMs must be a safe integer/);
    expect(() => toInt64(2 ** 60, "timeoutMs")).toThrow(TypeError);
  });

  it("maps the short runtime forms and passes a Runtime message through", () => {
    const process = create(DeployAppRequestSchema, deployAppRequest({ name: "a", runtime: { process: { command: ["python", "app.py"] } } }));
    expect(process.runtime?.kind).toMatchObject({ case: "process", value: { command: ["python", "app.py"], workingDir: "" } });
    expect(process.gpu).toBeUndefined();
    const runtime = create(RuntimeSchema, { kind: { case: "docker", value: { image: "img", port: 8080 } } });
    const docker = create(DeployAppRequestSchema, deployAppRequest({ name: "a", runtime }));
    expect(docker.runtime?.kind).toMatchObject({ case: "docker", value: { image: "img", port: 8080 } });
    const builtin = create(DeployAppRequestSchema, deployAppRequest({ name: "a", runtime: { builtin: { name: "echo" } } }));
    expect(builtin.runtime?.kind).toMatchObject({ case: "builtin", value: { name: "echo" } });
  });

  it("leaves unset update fields unset (they keep their value on the server)", () => {
    const update = create(UpdateAppRequestSchema, updateAppRequest({ app: "a", description: "new" }));
    expect(update.runtime).toBeUndefined();
    expect(update.timeoutMs).toBeUndefined();
    expect(update.description).toBe("new");
    expect(update.replaceEnv).toBe(false);
  });

  it("builds a submit request from plain JSON input", () => {
    const request = create(SubmitTaskRequestSchema, submitTaskRequest({ app: "a", input: { prompt: "x", n: [1, { y: null }] }, timeoutMs: 1_000 }));
    expect(request.input).toEqual({ prompt: "x", n: [1, { y: null }] });
    expect(request.timeoutMs).toBe(1_000n);
  });
});

describe("task states", () => {
  it("knows the terminal states", () => {
    expect([TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED, TaskState.TIMED_OUT, TaskState.EXPIRED].every(isTerminal)).toBe(true);
    expect([TaskState.UNSPECIFIED, TaskState.QUEUED, TaskState.ASSIGNED, TaskState.STARTING, TaskState.RUNNING].some(isTerminal)).toBe(false);
    expect(taskStateName(TaskState.TIMED_OUT)).toBe("timed_out");
    expect(taskStateName(42 as TaskState)).toBe("state_42");
  });
});

describe("paginate", () => {
  it("stops when a server repeats a page token", async () => {
    const seen: string[] = [];
    const items: number[] = [];
    for await (const item of paginate(async (token) => {
      seen.push(token);
      return { items: [seen.length], nextPageToken: "again" };
    })) {
      items.push(item);
    }
    expect(seen).toEqual(["", "again"]);
    expect(items).toEqual([1, 2]);
  });
});
