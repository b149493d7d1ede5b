// Runs the real `ngpu` CLI as a child process against the in-process fake network.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { TaskState } from "../../sdk/index.js";
import { startFakeNetwork, type FakeNetwork } from "../sdk/fake-network.js";
import { type CliResult, runCli } from "../helpers/cli.js";


let network: FakeNetwork;
let dataDir: string;


function ngpu(args: string[], options: { auth?: boolean; env?: Record<string, string> } = {}): Promise<CliResult> {
  return runCli(args, {
    ...(options.auth === false ? {} : { connection: network }),
    env: { NGPU_DATA_DIR: dataDir, ...options.env },
  });
}

beforeAll(async () => {
  // Steps slow enough that the CLI's watch, opened right after its submit, sees them all.
  network = await startFakeNetwork({ stepMs: 100 });
  network.addApp("echo");
});
afterAll(async () => {
  await network.destroy();
});
beforeEach(() => {
  dataDir = mkdtempSync(join(tmpdir(), "ngpu-cli-"));
  return () => rmSync(dataDir, { recursive: true, force: true });
});

describe("ngpu submit --wait", () => {
  it("prints the finished task as JSON, progress as plain lines on stderr, and exits 0", async () => {
    const result = await ngpu(["submit", "echo", "--input", "prompt=a cat", "--input", "steps=3", "--label", "run=cli", "--wait", "--json"]);
    expect(result.code, result.stderr).toBe(0);
    const task = JSON.parse(result.stdout) as { id: string; state: string; output: { echo: unknown }; labels: Record<string, string> };
    expect(task.state).toBe("TASK_STATE_SUCCEEDED");
    expect(task.output.echo).toEqual({ prompt: "a cat", steps: 3 });
    expect(task.labels).toEqual({ run: "cli" });
    expect(result.stderr).toContain(`task ${task.id}: running`);
    expect(result.stderr).toContain("progress: 67% 2/3 step 2");
    expect(result.stderr).toContain(`task ${task.id}: succeeded`);
  });

  it("saves data: URIs of the output with --output-dir and prints the paths", async () => {
    const outDir = join(dataDir, "out");
    const result = await ngpu(["submit", "echo", "--input", "n=1", "--output-dir", outDir]);
    expect(result.code, result.stderr).toBe(0);
    const path = join(outDir, "image.png");
    expect(result.stdout).toContain(`saved ${path}`);
    expect(result.stdout).toContain(`"image": "${path}"`);
    expect(readFileSync(path).subarray(1, 4).toString()).toBe("PNG");
  });

  it("exits 1 with the task's error when it fails", async () => {
    const result = await ngpu(["submit", "echo", "--input", "fail=true", "--wait"]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/error: task task-\d+ failed: boom/);
    expect(result.stdout).toBe("");
  });

  it("prints only the id without --wait", async () => {
    const result = await ngpu(["submit", "echo"]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^task-\d+\n$/);
  });
});

describe("ngpu tasks list", () => {
  it("filters by label and state, as a table and as JSON", async () => {
    const done = network.addTask("echo", TaskState.SUCCEEDED, { batch: "list-test" });
    const failed = network.addTask("echo", TaskState.FAILED, { batch: "list-test" });
    const table = await ngpu(["tasks", "list", "--label", "batch=list-test"]);
    expect(table.code, table.stderr).toBe(0);
    const lines = table.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^ID\s+APP\s+STATE\s+PROGRESS\s+CREATED\s+DURATION\s+NODE$/);
    expect(lines.slice(1).map((line) => line.split(/\s+/).slice(0, 3))).toEqual([
      [failed.id, "echo", "failed"],
      [done.id, "echo", "succeeded"],
    ]);

    const json = await ngpu(["tasks", "list", "--label", "batch=list-test", "--state", "succeeded", "--json"]);
    expect(json.code, json.stderr).toBe(0);
    const { tasks } = JSON.parse(json.stdout) as { tasks: { id: string }[] };
    expect(tasks.map((t) => t.id)).toEqual([done.id]);
  });
});

describe("ngpu apps deploy", () => {
  it("turns flags into the app's runtime, GPU needs, env and timeout", async () => {
    const result = await ngpu([
      "apps", "deploy", "sd", "--image", "r8.im/sd", "--min-vram", "8GiB",
      "--gpu-model", "NVIDIA A100", "--env", "A=1", "--timeout", "90s", "--json",
    ]);
    expect(result.code, result.stderr).toBe(0);
    const { app, created } = JSON.parse(result.stdout) as { app: Record<string, unknown>; created: boolean };
    expect(created).toBe(true);
    expect(app).toMatchObject({
      name: "sd",
      runtime: { docker: { image: "r8.im/sd" } },
      gpu: { count: 1, minMemoryBytes: "8589934592", allowedModels: ["NVIDIA A100"] },
      env: { A: "1" },
      timeoutMs: "90000",
    });
  });
});

describe("configuration", () => {
  it("exits 2 and explains how to get an API key when none is configured", async () => {
    const result = await ngpu(["tasks", "list"], { auth: false, env: { NGPU_URL: network.url } });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("error: no API key configured");
    expect(result.stderr).toContain("--api-key");
    expect(result.stderr).toContain("NGPU_API_KEY");
    expect(result.stderr).toContain(join(dataDir, "credentials.json"));
    expect(result.stdout).toBe("");
  });

  it("uses the credentials file the local network writes", async () => {
    mkdirSync(dataDir, { recursive: true });
    writeFileSync(join(dataDir, "credentials.json"), JSON.stringify({ url: network.url, apiKey: network.apiKey }));
    const result = await ngpu(["apps", "list", "--json"], { auth: false });
    expect(result.code, result.stderr).toBe(0);
    expect((JSON.parse(result.stdout) as { apps: { name: string }[] }).apps.map((a) => a.name)).toContain("echo");
  });

  it("exits 1 with a hint when the key is refused", async () => {
    const result = await ngpu(["apps", "list"], { auth: false, env: { NGPU_URL: network.url, NGPU_API_KEY: "wrong" } });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("error: unauthenticated: bad api key");
    expect(result.stderr).toContain("hint: the API key was refused");
  });

  it("exits 2 on a bad flag value, naming the flag", async () => {
    const result = await ngpu(["submit", "echo", "--priority", "high"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('error: --priority: "high" is not an integer');
    expect(existsSync(join(dataDir, "out"))).toBe(false);
  });
});

describe("client-side errors are usage errors naming the flag", () => {
  it("refuses numbers beyond the field they fill, and amounts beyond an int64 of nano-USD", async () => {
    const pool = await ngpu(["apps", "pool", "echo", "--max", "99999999999999"]);
    expect(pool.code).toBe(2);
    expect(pool.stderr).toContain("error: --max must be an integer from 0 to 2147483647");
    const price = await ngpu(["prices", "set", "Test GPU", "99999999999"]);
    expect(price.code).toBe(2);
    expect(price.stderr).toContain("error: <usd-per-second> must be at most 9223372036.854775807 USD");
    const cap = await ngpu(["limits", "set", "--monthly-cap-usd", "99999999999999"]);
    expect(cap.code).toBe(2);
    expect(cap.stderr).toContain("error: --monthly-cap-usd must be at most");
  });

  it("refuses a file that is not a receipts export", async () => {
    const file = join(dataDir, "f.json");
    writeFileSync(file, "{}");
    const result = await ngpu(["usage", "verify", "--file", file], { auth: false });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`error: ${file} is not a receipts export`);
    expect(result.stderr).toContain("keys: expected");
  });
});
