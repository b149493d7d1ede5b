import { describe, expect, it } from "vitest";
import { TaskState } from "../../sdk/index.js";
import { UsageError } from "../../cli/errors.js";
import {
  parseBytes,
  parseDuration,
  parseInteger,
  parseKeyValue,
  parseKeyValues,
  parseTaskStates,
  splitCommandLine,
} from "../../cli/parse.js";

describe("parseDuration", () => {
  it.each([
    ["500ms", 500],
    ["60s", 60_000],
    ["10m", 600_000],
    ["1h", 3_600_000],
    ["1d", 86_400_000],
    ["1h30m", 5_400_000],
    ["1m30s", 90_000],
    ["1.5s", 1_500],
    ["0s", 0],
    [" 2m ", 120_000],
  ])("%s → %i ms", (text, ms) => {
    expect(parseDuration("--timeout", text)).toBe(ms);
  });

  it.each(["60", "", "10 m", "1y", "-5s", "s", "1h-", "ten minutes"])("refuses %j and names the flag", (text) => {
    expect(() => parseDuration("--timeout", text)).toThrow(UsageError);
    expect(() => parseDuration("--timeout", text)).toThrow(/^--timeout: .* is not a duration/);
  });
});

describe("parseBytes", () => {
  it.each([
    ["8GiB", 8n << 30n],
    ["8gib", 8n << 30n],
    ["8Gi", 8n << 30n],
    ["8GB", 8_000_000_000n],
    ["8G", 8_000_000_000n],
    ["512MiB", 512n << 20n],
    ["1.5GiB", 3n << 29n],
    ["1TiB", 1n << 40n],
    ["4096", 4096n],
    ["100B", 100n],
    ["24 GiB", 24n << 30n],
  ])("%s → %s bytes", (text, bytes) => {
    expect(parseBytes("--min-vram", text)).toBe(bytes);
  });

  it.each(["", "GiB", "8XB", "-1GiB", "8 G B", "1e9"])("refuses %j and names the flag", (text) => {
    expect(() => parseBytes("--min-vram", text)).toThrow(/^--min-vram: .* is not a size/);
  });
});

describe("parseInteger", () => {
  it("parses within range", () => {
    expect(parseInteger("--priority", "-5", { min: -1000, max: 1000 })).toBe(-5);
    expect(parseInteger("--priority", "+7")).toBe(7);
  });
  it("refuses non-integers and out-of-range values, naming the flag", () => {
    expect(() => parseInteger("--gpus", "1.5")).toThrow(/^--gpus: "1.5" is not an integer/);
    expect(() => parseInteger("--priority", "2000", { min: -1000, max: 1000 })).toThrow(/^--priority must be an integer from -1000 to 1000/);
  });
});

describe("parseKeyValue", () => {
  it("splits at the first =", () => {
    expect(parseKeyValue("--env", "A=b=c")).toEqual(["A", "b=c"]);
    expect(parseKeyValue("--env", "A=")).toEqual(["A", ""]);
    expect(parseKeyValues("--label", ["a=1", "b=2", "a=3"])).toEqual({ a: "3", b: "2" });
  });
  it("refuses a missing key or =", () => {
    expect(() => parseKeyValue("--env", "A")).toThrow(/^--env: "A" is not of the form key=value/);
    expect(() => parseKeyValue("--env", "=b")).toThrow(/^--env:/);
  });
});

describe("splitCommandLine", () => {
  it.each([
    ["python app.py", ["python", "app.py"]],
    ["  python   -m  app  ", ["python", "-m", "app"]],
    [`python -c 'print("hi there")'`, ["python", "-c", 'print("hi there")']],
    [`echo "a \\"b\\" c" d`, ["echo", 'a "b" c', "d"]],
    [`echo a\\ b`, ["echo", "a b"]],
    [`echo '' x`, ["echo", "", "x"]],
    [`node "my dir/app.js"`, ["node", "my dir/app.js"]],
  ])("%s", (text, argv) => {
    expect(splitCommandLine("--command", text)).toEqual(argv);
  });
  it("refuses unterminated quotes and empty commands", () => {
    expect(() => splitCommandLine("--command", "python 'app.py")).toThrow(/^--command: unterminated ' quote/);
    expect(() => splitCommandLine("--command", "   ")).toThrow(/^--command: the command is empty/);
  });
});

describe("parseTaskStates", () => {
  it("accepts names in any case, with dashes or the enum prefix", () => {
    expect(parseTaskStates("--state", "queued,RUNNING, timed-out,task_state_failed")).toEqual([
      TaskState.QUEUED,
      TaskState.RUNNING,
      TaskState.TIMED_OUT,
      TaskState.FAILED,
    ]);
  });
  it("lists the valid names when one is wrong", () => {
    expect(() => parseTaskStates("--state", "queued,done")).toThrow(/^--state: unknown task state "done" \(one of: queued, assigned,/);
    expect(() => parseTaskStates("--state", "unspecified")).toThrow(UsageError);
  });
});
