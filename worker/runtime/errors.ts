// Errors of the app runtime. Each has a stable `code` so the worker can map it to a task outcome
// (retry elsewhere, fail the task, mark the node) without matching on messages.

/** What went wrong talking to a Cog app instance. */
export type CogErrorCode =
  /** Connection refused/reset: nothing is listening, or the app died. */
  | "unreachable"
  /** The app did not answer within the request timeout. */
  | "timeout"
  /** 409: the instance is already running another prediction. */
  | "busy"
  /** 422: the app rejected the input; `detail` holds its validation errors. */
  | "invalid_input"
  /** 503: setup has not finished, failed, or the app is shutting down. */
  | "not_ready"
  /** An answer the Cog protocol does not allow (status code or body). */
  | "protocol";

/** A failed request to a Cog app instance. */
export class CogError extends Error {
  override readonly name = "CogError";
  readonly code: CogErrorCode;
  /** HTTP status of the answer, when there was one. */
  readonly status: number | undefined;
  /** The body's `detail` (422 validation errors, 409 message), when there was one. */
  readonly detail: unknown;

  constructor(code: CogErrorCode, message: string, options: { cause?: unknown; status?: number; detail?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = options.status;
    this.detail = options.detail;
  }
}

/** Why an app instance could not be started. */
export type AppStartErrorCode =
  /** The command or container could not be started at all (not found, bad image, docker error). */
  | "spawn_failed"
  /** The process/container exited before it became READY. */
  | "exited"
  /** The app reported SETUP_FAILED (or DEFUNCT) during setup. */
  | "setup_failed"
  /** The app did not become READY within the ready timeout. */
  | "ready_timeout";

/** An app instance that did not come up. The instance has been stopped when this is thrown. */
export class AppStartError extends Error {
  override readonly name = "AppStartError";
  readonly code: AppStartErrorCode;
  /** The last of the app's output (stdout and stderr, or the app's setup logs), for diagnosis. */
  readonly outputTail: string;

  constructor(code: AppStartErrorCode, message: string, options: { cause?: unknown; outputTail?: string } = {}) {
    const tail = options.outputTail?.trim() ?? "";
    // The tail goes into the message too: it is what an operator needs first when an app won't start.
    super(tail ? `${message}\n--- app output (last lines) ---\n${lastLines(tail, 20)}` : message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.outputTail = options.outputTail ?? "";
  }
}

function lastLines(text: string, n: number): string {
  const lines = text.split(/\r?\n/);
  return lines.slice(Math.max(0, lines.length - n)).join("\n");
}
