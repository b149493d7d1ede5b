// Saves the files an app returned as data: URIs (anywhere in its JSON output) into a
// directory, named after where they were in the output: `image.png`, `images-0.png`.
import { mkdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { extensionForMimeType, parseDataUri } from "./data-uri.js";

export interface SavedFile {
  /** Absolute path of the written file. */
  readonly path: string;
  /** Where the data: URI was in the output, e.g. "images[0]"; "" for the output itself. */
  readonly jsonPath: string;
  readonly mimeType: string;
  readonly sizeBytes: number;
}

export interface SaveResult {
  readonly files: readonly SavedFile[];
  /** The output with each saved data: URI replaced by its file's path. */
  readonly output: JsonValue;
}

function safeName(name: string): string {
  const cleaned = name.replace(/[^A-Za-z0-9._-]+/g, "_").replace(/^[._]+/, "");
  return cleaned === "" ? "file" : cleaned.slice(0, 100);
}

/**
 * Decodes every data: URI in `output` (a string, or inside arrays and objects) into
 * a file under `dir` (created if needed). `baseName` names a top-level value and
 * the items of a top-level array; default "output". Existing files are overwritten;
 * two values that would get the same name within one call get `-2`, `-3` suffixes.
 */
export async function saveOutputFiles(output: JsonValue, dir: string, baseName = "output"): Promise<SaveResult> {
  const root = resolve(dir);
  const files: SavedFile[] = [];
  const used = new Set<string>();
  let madeDir = false;

  async function save(text: string, name: string, jsonPath: string): Promise<JsonValue> {
    const data = parseDataUri(text);
    if (!data) return text;
    const ext = extensionForMimeType(data.mimeType);
    let fileName = `${safeName(name)}.${ext}`;
    for (let n = 2; used.has(fileName); n++) fileName = `${safeName(name)}-${n}.${ext}`;
    used.add(fileName);
    if (!madeDir) {
      await mkdir(root, { recursive: true });
      madeDir = true;
    }
    const path = join(root, fileName);
    await writeFile(path, data.bytes);
    files.push({ path, jsonPath, mimeType: data.mimeType, sizeBytes: data.bytes.length });
    return path;
  }

  async function walk(value: JsonValue, name: string | undefined, jsonPath: string): Promise<JsonValue> {
    if (typeof value === "string") return save(value, name ?? baseName, jsonPath);
    if (Array.isArray(value)) {
      const out: JsonValue[] = [];
      for (const [i, item] of value.entries()) out.push(await walk(item, `${name ?? baseName}-${i}`, `${jsonPath}[${i}]`));
      return out;
    }
    if (value !== null && typeof value === "object") {
      const out: JsonObject = {};
      for (const [key, item] of Object.entries(value)) {
        out[key] = await walk(item, name === undefined ? key : `${name}-${key}`, jsonPath === "" ? key : `${jsonPath}.${key}`);
      }
      return out;
    }
    return value;
  }

  return { output: await walk(output, undefined, ""), files };
}

/** Replaces long data: URIs by a short description, for printing an output to a terminal. */
export function summarizeDataUris(value: JsonValue, maxLength = 120): JsonValue {
  if (typeof value === "string") {
    if (value.length <= maxLength) return value;
    const data = parseDataUri(value);
    return data ? `<${data.mimeType}, ${data.bytes.length} bytes; save with --output-dir>` : value;
  }
  if (Array.isArray(value)) return value.map((v) => summarizeDataUris(v, maxLength));
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, summarizeDataUris(v, maxLength)]));
  }
  return value;
}
