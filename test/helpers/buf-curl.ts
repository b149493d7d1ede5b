import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";

/** Repository root: buf curl runs here so that `--schema .` finds buf.yaml. */
export const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));
const BUF = fileURLToPath(new URL("../../node_modules/.bin/buf", import.meta.url));

/** Outcome of one `buf curl` run. */
export interface BufCurlResult {
  /**
   * Exit status. For a failed RPC buf curl exits with the gRPC code shifted left by 3
   * (e.g. 96 for UNIMPLEMENTED); usage and transport problems exit below 8.
   */
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Options for {@link bufCurl}. */
export interface BufCurlOptions {
  /** Kills buf curl after this many milliseconds (the result then has a non-zero code). Default 30 000. */
  readonly timeoutMs?: number;
  /** Written to stdin, for `--data @-`. */
  readonly stdin?: string;
}

/**
 * Runs `node_modules/.bin/buf curl <args>` from the repository root and resolves with its exit
 * code and output; never rejects for a non-zero exit.
 *
 * @example bufCurl(["--http2-prior-knowledge", "--protocol", "grpc", "--list-services", url])
 */
export function bufCurl(args: readonly string[], options: BufCurlOptions = {}): Promise<BufCurlResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      BUF,
      ["curl", ...args],
      { cwd: REPO_ROOT, timeout: options.timeoutMs ?? 30_000, encoding: "utf8", env: { ...process.env, NO_COLOR: "1" } },
      (error, stdout, stderr) => {
        if (error !== null && typeof error.code !== "number" && error.killed !== true) {
          // Could not start buf at all (ENOENT and the like): that is a broken test setup.
          reject(error);
          return;
        }
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : 124;
        resolve({ code, stdout, stderr });
      },
    );
    child.stdin?.end(options.stdin ?? "");
  });
}
