import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { UniversalServerResponse } from "@connectrpc/connect/protocol";

/**
 * connect-es reports a request body that is not valid protobuf as INTERNAL
 * ("parse binary: …"), as if the server were at fault. It is the caller's
 * input: these helpers turn it into INVALID_ARGUMENT naming the message type,
 * wherever it surfaces (see rpc-server.ts and errors.ts).
 */
const PARSE_BINARY = "parse binary:";

function isDecodeFailure(code: Code, message: string): boolean {
  return code === Code.Internal && message.startsWith(PARSE_BINARY);
}

function decodeMessage(method: DescMethod | undefined, detail: string): string {
  const what = method ? `a valid ${method.input.typeName} message` : "a valid protobuf message";
  return `request: is not ${what} (${detail.slice(PARSE_BINARY.length).trim()})`;
}

/** The error to report instead of `err`, when `err` is a failure to decode the request. */
export function asDecodeError(err: unknown, method?: DescMethod): unknown {
  if (err instanceof ConnectError && isDecodeFailure(err.code, err.rawMessage)) {
    return new ConnectError(decodeMessage(method, err.rawMessage), Code.InvalidArgument);
  }
  return err;
}

/** gRPC, gRPC-Web and streaming Connect calls decode inside the interceptor chain: remap there. */
export const decodeErrorInterceptor: Interceptor = (next) => async (req) => {
  try {
    return await next(req);
  } catch (err) {
    throw asDecodeError(err, req.method);
  }
};

/** Rewrites grpc-status 13 "parse binary: …" in gRPC trailers; true when it did. */
function remapTrailer(trailer: Headers, method: DescMethod): boolean {
  const message = decodeURIComponent(trailer.get("grpc-message") ?? "");
  if (trailer.get("grpc-status") !== String(Code.Internal) || !isDecodeFailure(Code.Internal, message)) return false;
  trailer.set("grpc-status", String(Code.InvalidArgument));
  trailer.set("grpc-message", encodeURIComponent(decodeMessage(method, message)));
  return true;
}

/** gRPC-Web carries its trailers as the body's last frame (flag 0x80): rewrite that frame. */
function remapGrpcWebChunk(chunk: Uint8Array, method: DescMethod): Uint8Array {
  if (chunk.length < 5 || chunk[0] !== 0x80) return chunk;
  const trailer = new Headers();
  for (const line of Buffer.from(chunk.subarray(5)).toString("utf8").split("\r\n")) {
    const colon = line.indexOf(":");
    if (colon > 0) trailer.set(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
  }
  if (!remapTrailer(trailer, method)) return chunk;
  let text = "";
  trailer.forEach((value, key) => (text += `${key}: ${value}\r\n`));
  const data = Buffer.from(text, "utf8");
  const frame = Buffer.alloc(5 + data.length);
  frame[0] = 0x80;
  frame.writeUInt32BE(data.length, 1);
  data.copy(frame, 5);
  return frame;
}

/**
 * Unary calls decode their request before any interceptor runs. The failure
 * then reaches the response as INTERNAL: for Connect a JSON body with HTTP 500,
 * for gRPC a trailer, for gRPC-Web a trailer frame. Rewrites it to
 * INVALID_ARGUMENT; every other response passes through untouched.
 */
export async function remapUnaryDecodeError(response: UniversalServerResponse, method: DescMethod): Promise<UniversalServerResponse> {
  const contentType = response.header?.get("content-type") ?? "";
  if (contentType.startsWith("application/grpc-web") && response.body) {
    const body = response.body;
    return { ...response, body: (async function* () { for await (const chunk of body) yield remapGrpcWebChunk(chunk, method); })() };
  }
  if (contentType.startsWith("application/grpc") && response.trailer) {
    const trailer = response.trailer;
    remapTrailer(trailer, method);
    if (!response.body) return response;
    const body = response.body;
    return {
      ...response,
      body: (async function* () {
        yield* body;
        remapTrailer(trailer, method);
      })(),
    };
  }
  if (response.status !== 500 || !response.body || !(response.header?.get("content-type") ?? "").startsWith("application/json")) return response;
  const chunks: Uint8Array[] = [];
  for await (const chunk of response.body) chunks.push(chunk);
  const bytes = Buffer.concat(chunks);
  let parsed: { code?: unknown; message?: unknown } | undefined;
  try {
    parsed = JSON.parse(bytes.toString("utf8")) as { code?: unknown; message?: unknown };
  } catch {
    parsed = undefined;
  }
  const message = typeof parsed?.message === "string" ? parsed.message : "";
  if (parsed?.code !== "internal" || !isDecodeFailure(Code.Internal, message)) {
    return { ...response, body: (async function* () { yield bytes; })() };
  }
  const body = Buffer.from(JSON.stringify({ code: "invalid_argument", message: decodeMessage(method, message) }));
  const header = new Headers(response.header);
  header.set("content-length", String(body.byteLength));
  return { ...response, status: 400, header, body: (async function* () { yield body; })() };
}
