/**
 * Errors the control plane's domain code raises. The API edge maps `code` to
 * the gRPC status of the same name; anything else becomes INTERNAL there.
 */
export type ErrorCode =
  | "INVALID_ARGUMENT"
  | "NOT_FOUND"
  | "ALREADY_EXISTS"
  | "PERMISSION_DENIED"
  | "UNAUTHENTICATED"
  | "FAILED_PRECONDITION"
  | "RESOURCE_EXHAUSTED"
  | "UNAVAILABLE"
  | "DEADLINE_EXCEEDED";

export class NgpuError extends Error {
  override readonly name = "NgpuError";
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Bad input: the message names the field, as `field: what is wrong`. */
export function invalidArgument(field: string, problem: string): NgpuError {
  return new NgpuError("INVALID_ARGUMENT", `${field}: ${problem}`);
}

export function notFound(what: string, id: string): NgpuError {
  return new NgpuError("NOT_FOUND", `${what} ${JSON.stringify(id)} not found`);
}
