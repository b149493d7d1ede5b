// Builds a task's input from `--input-json` and repeated `--input k=v` flags.
import { readFile } from "node:fs/promises";
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { mimeTypeForPath, toDataUri } from "./data-uri.js";
import { UsageError } from "./errors.js";
import { parseKeyValue } from "./parse.js";

export interface TaskInputFlags {
  /** Repeated `k=v`: v is JSON when it parses as JSON, else a string; `k=@path` sends the file as a data: URI. */
  readonly input?: readonly string[] | undefined;
  /** A JSON object, or `@file.json` to read one from a file. */
  readonly inputJson?: string | undefined;
}

/** `30` → 30, `true` → true, `{"a":1}` → object, `a cat` → "a cat". To send the string "30", write `'"30"'`. */
export function parseInputValue(text: string): JsonValue {
  try {
    return JSON.parse(text) as JsonValue;
  } catch {
    return text;
  }
}

async function readFlagFile(flag: string, path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    const reason = err instanceof Error && "code" in err ? String(err.code) : String(err);
    throw new UsageError(`${flag}: cannot read ${path} (${reason})`, { cause: err });
  }
}

/**
 * The input object: `--input-json` first, then each `--input` on top (a later key
 * wins). Files named with `@` are read relative to the working directory.
 */
export async function buildTaskInput(flags: TaskInputFlags): Promise<JsonObject> {
  let input: JsonObject = {};
  if (flags.inputJson !== undefined) {
    const text = flags.inputJson.startsWith("@")
      ? (await readFlagFile("--input-json", flags.inputJson.slice(1))).toString("utf8")
      : flags.inputJson;
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw new UsageError(`--input-json: not valid JSON (${err instanceof Error ? err.message : String(err)})`, { cause: err });
    }
    if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
      throw new UsageError("--input-json: must be a JSON object, e.g. '{\"prompt\": \"a cat\"}'");
    }
    input = parsed as JsonObject;
  }
  for (const text of flags.input ?? []) {
    const [key, value] = parseKeyValue("--input", text);
    if (value.startsWith("@") && value.length > 1) {
      const path = value.slice(1);
      input[key] = toDataUri(await readFlagFile("--input", path), mimeTypeForPath(path));
    } else {
      input[key] = parseInputValue(value);
    }
  }
  return input;
}
