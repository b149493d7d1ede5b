/** Exit codes of the `ngpu` CLI. */
export const ExitCode = {
  /** Done; for task commands, the task SUCCEEDED. */
  OK: 0,
  /** A call failed, or the task ended in any state but SUCCEEDED. */
  FAILED: 1,
  /** Bad flags or arguments, or missing configuration (no API key). */
  USAGE: 2,
  /** Stopped by Ctrl-C. */
  INTERRUPTED: 130,
} as const;

/** An error the CLI reports as one line, `error: <message>`, and exits with `exitCode`. */
export class CliError extends Error {
  override readonly name: string = "CliError";
  readonly exitCode: number;

  constructor(message: string, exitCode: number = ExitCode.FAILED, options?: { cause?: unknown }) {
    super(message, options);
    this.exitCode = exitCode;
  }
}

/** Bad input from the user: a flag value, an argument, the configuration. Exit code 2. */
export class UsageError extends CliError {
  override readonly name: string = "UsageError";

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, ExitCode.USAGE, options);
  }
}
