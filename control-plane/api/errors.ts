import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { NgpuError } from "../errors.js";
import type { Logger } from "../log.js";
import { asDecodeError } from "./decode-errors.js";

/**
 * The one place domain errors become gRPC statuses. An unexpected error is
 * logged and reaches the caller as INTERNAL without its details; database or
 * bus outages reach callers as UNAVAILABLE so clients retry.
 */
export function toConnectError(err: unknown, logger: Logger): ConnectError {
  if (err instanceof ConnectError) return err;
  if (err instanceof NgpuError) return new ConnectError(err.message, Code[codeName(err.code)]);
  if (isUnavailable(err)) {
    logger.warn({ err }, "dependency unavailable");
    return new ConnectError("the service is temporarily unavailable, retry later", Code.Unavailable);
  }
  logger.error({ err }, "unexpected error in handler");
  return new ConnectError("internal error", Code.Internal);
}

function codeName(code: NgpuError["code"]): keyof typeof Code {
  const names: Record<NgpuError["code"], keyof typeof Code> = {
    INVALID_ARGUMENT: "InvalidArgument",
    NOT_FOUND: "NotFound",
    ALREADY_EXISTS: "AlreadyExists",
    PERMISSION_DENIED: "PermissionDenied",
    UNAUTHENTICATED: "Unauthenticated",
    FAILED_PRECONDITION: "FailedPrecondition",
    RESOURCE_EXHAUSTED: "ResourceExhausted",
    UNAVAILABLE: "Unavailable",
    DEADLINE_EXCEEDED: "DeadlineExceeded",
  };
  return names[code];
}

/** Connection-level failures from pg or a restarting Postgres (SQLSTATE class 08, 57P0x). */
function isUnavailable(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | undefined;
  const code = typeof e?.code === "string" ? e.code : "";
  const message = typeof e?.message === "string" ? e.message : "";
  return (
    ["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "57P01", "57P02", "57P03"].includes(code) ||
    code.startsWith("08") ||
    /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/.test(message)
  );
}

type AnyImpl = Record<string, (req: unknown, ctx: HandlerContext) => unknown>;

/**
 * Wraps every method of a service implementation so errors go through
 * toConnectError, for unary calls and for streams alike.
 */
export function guarded<T extends object>(service: DescService, impl: T, logger: Logger): T {
  const wrapped: AnyImpl = {};
  for (const method of service.methods) {
    const fn = (impl as AnyImpl)[method.localName];
    if (!fn) continue;
    const rpcLogger = logger.child({ rpc: `${service.typeName}/${method.name}` });
    if (method.methodKind === "unary" || method.methodKind === "client_streaming") {
      wrapped[method.localName] = async (req, ctx) => {
        try {
          return await fn.call(impl, req, ctx);
        } catch (err) {
          throw toConnectError(asDecodeError(err, method), rpcLogger);
        }
      };
    } else {
      wrapped[method.localName] = (req, ctx) =>
        (async function* () {
          try {
            yield* fn.call(impl, req, ctx) as AsyncIterable<unknown>;
          } catch (err) {
            throw toConnectError(asDecodeError(err, method), rpcLogger);
          }
        })();
    }
  }
  return wrapped as T;
}
