// The CLI's configuration: where the control plane is and which API key to use.
// This is the only module of the CLI that reads process.env.
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { UsageError } from "./errors.js";

/** Control-plane URL when nothing else names one. */
export const DEFAULT_URL = "http://127.0.0.1:7700";
/** Data directory of the local network, relative to the working directory. */
export const DEFAULT_DATA_DIR = ".ngpu";
/** File in the data directory where `ngpu dev` writes `{ "url", "apiKey" }`. */
export const CREDENTIALS_FILE = "credentials.json";

/** Flags that override the environment. */
export interface ConfigFlags {
  readonly url?: string | undefined;
  readonly apiKey?: string | undefined;
}

/** Resolved configuration of the API commands. */
export interface ClientConfig {
  readonly url: string;
  readonly apiKey: string;
}

/** The variables the CLI reads. */
export interface CliEnv {
  readonly NGPU_URL?: string | undefined;
  readonly NGPU_API_KEY?: string | undefined;
  readonly NGPU_DATA_DIR?: string | undefined;
}

/** The process environment, for `resolveClientConfig`; tests pass their own. */
export function processEnv(): CliEnv {
  return process.env;
}

/** Absolute path of the credentials file the local network writes. */
export function credentialsPath(env: CliEnv = processEnv(), cwd: string = process.cwd()): string {
  return join(resolve(cwd, nonEmpty(env.NGPU_DATA_DIR) ?? DEFAULT_DATA_DIR), CREDENTIALS_FILE);
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === "" ? undefined : value.trim();
}

interface Credentials {
  url?: string;
  apiKey?: string;
}

function readCredentials(path: string): Credentials | undefined {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new UsageError(`cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${path} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  if (parsed === null || typeof parsed !== "object") throw new UsageError(`${path} must hold a JSON object { "url", "apiKey" }`);
  const { url, apiKey } = parsed as Record<string, unknown>;
  const out: Credentials = {};
  if (typeof url === "string") out.url = url;
  if (typeof apiKey === "string") out.apiKey = apiKey;
  return out;
}

/**
 * Resolves the URL (`--url` > `NGPU_URL` > the credentials file > http://127.0.0.1:7700)
 * and the API key (`--api-key` > `NGPU_API_KEY` > the credentials file
 * `$NGPU_DATA_DIR/credentials.json`, data dir default `./.ngpu`). Fails with a
 * UsageError that says how to get a key when there is none.
 */
export function resolveClientConfig(flags: ConfigFlags, env: CliEnv = processEnv(), cwd: string = process.cwd()): ClientConfig {
  const flagUrl = nonEmpty(flags.url) ?? nonEmpty(env.NGPU_URL);
  const flagKey = nonEmpty(flags.apiKey) ?? nonEmpty(env.NGPU_API_KEY);
  const path = credentialsPath(env, cwd);
  const file = flagUrl !== undefined && flagKey !== undefined ? undefined : readCredentials(path);
  const url = flagUrl ?? nonEmpty(file?.url) ?? DEFAULT_URL;
  const apiKey = flagKey ?? nonEmpty(file?.apiKey);
  if (apiKey === undefined) {
    throw new UsageError(
      [
        "no API key configured. Either:",
        "  - pass --api-key <key>, or set NGPU_API_KEY, with a key from your control-plane operator; or",
        `  - start a local network with \`ngpu dev\` (npm start), which writes ${path}`,
        "    (set NGPU_DATA_DIR if its data directory is elsewhere).",
      ].join("\n"),
    );
  }
  try {
    const parsed = new URL(url);
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw new Error("not http");
  } catch {
    throw new UsageError(`--url/NGPU_URL: ${JSON.stringify(url)} is not an http:// or https:// URL`);
  }
  return { url, apiKey };
}
