// Runs the real `ngpu` CLI (cli/main.ts through tsx) in a child process, as a user would.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const repoRoot = fileURLToPath(new URL("../..", import.meta.url));

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  /** Adds `--url` and `--api-key` before the arguments. */
  readonly connection?: { readonly url: string; readonly apiKey: string };
  /** Variables on top of the test's environment, from which every NGPU_ variable is removed first. */
  readonly env?: Record<string, string>;
}

/** Runs `ngpu <args>` to its exit; never rejects on a non-zero exit (the result says it). */
export function runCli(args: readonly string[], options: CliOptions = {}): Promise<CliResult> {
  const connection = options.connection ? ["--url", options.connection.url, "--api-key", options.connection.apiKey] : [];
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith("NGPU_")));
  const child = spawn(process.execPath, ["--import", "tsx", "cli/main.ts", ...connection, ...args], {
    cwd: repoRoot,
    env: { ...inherited, ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}
