import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import tls from "node:tls";
import { Code, ConnectError, type ConnectRouter, createConnectRouter, type Interceptor } from "@connectrpc/connect";
import { compressionBrotli, compressionGzip, universalRequestFromNodeRequest, universalResponseToNodeResponse } from "@connectrpc/connect-node";
import type { UniversalHandler } from "@connectrpc/connect/protocol";
import { applyCors } from "./cors.js";
import { decodeErrorInterceptor, remapUnaryDecodeError } from "./decode-errors.js";

/** Default limit on one RPC message, read or written: 4 MiB, as gRPC's default. */
export const DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;
/** Default grace period of {@link RpcServer.close} before sockets are destroyed. */
export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 5_000;
/** Default time a new connection may stay silent before its first bytes arrive. */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;

/**
 * A handler for requests that match no RPC: HTTP/1.1 or HTTP/2 (compatibility API) alike.
 * Must always end the response.
 */
export type RpcFallbackHandler = (
  request: http.IncomingMessage | http2.Http2ServerRequest,
  response: http.ServerResponse | http2.Http2ServerResponse,
) => void;

/** Options for {@link startRpcServer}. */
export interface RpcServerOptions {
  /** Interface to listen on, e.g. "127.0.0.1", "0.0.0.0" or "::". */
  readonly host: string;
  /** TCP port; 0 picks a free one (read it back from {@link RpcServer.port}). */
  readonly port: number;
  /** Registers the services, e.g. `(router) => router.service(AppService, impl)`. */
  readonly routes: (router: ConnectRouter) => void;
  /** Serves every request whose path is no RPC (the dashboard, later). Default: empty 404. */
  readonly fallback?: RpcFallbackHandler;
  /**
   * Largest RPC message accepted or sent, in bytes (after decompression); larger ones fail with
   * RESOURCE_EXHAUSTED. Default {@link DEFAULT_MAX_MESSAGE_BYTES} (4 MiB).
   */
  readonly maxMessageBytes?: number;
  /** Overrides `maxMessageBytes` for received messages, in bytes. */
  readonly readMaxBytes?: number;
  /** Overrides `maxMessageBytes` for sent messages, in bytes. */
  readonly writeMaxBytes?: number;
  /**
   * How long {@link RpcServer.close} lets in-flight calls finish, in milliseconds, before it
   * destroys the remaining connections. Default {@link DEFAULT_SHUTDOWN_TIMEOUT_MS} (5 s).
   */
  readonly shutdownTimeoutMs?: number;
  /**
   * How long a new connection may send nothing before it is dropped, in milliseconds: its first
   * bytes decide between HTTP/2 and HTTP/1.1. Default {@link DEFAULT_HANDSHAKE_TIMEOUT_MS} (10 s).
   */
  readonly handshakeTimeoutMs?: number;
  /**
   * Answers CORS preflights and adds CORS headers, so browser pages on other origins can call
   * the RPCs (see cors.ts). Default false.
   */
  readonly cors?: boolean;
  /** Interceptors applied to every RPC (auth, logging). Default none. */
  readonly interceptors?: readonly Interceptor[];
  /**
   * Told about errors that concern no single call: failed accepts, HTTP/2 session errors.
   * Default: ignored (the connection concerned is dropped either way).
   */
  readonly onError?: (error: Error) => void;
  /**
   * Serve TLS with this certificate chain and private key (PEM). ALPN then picks HTTP/2 ("h2")
   * or HTTP/1.1 for each connection. Default: plaintext, with the first-bytes sniff.
   */
  readonly tls?: { readonly cert: string | Buffer; readonly key: string | Buffer };
}

/** A running RPC server; see {@link startRpcServer}. */
export interface RpcServer {
  /** Base URL for clients, e.g. "http://127.0.0.1:50051" (a wildcard host becomes loopback). */
  readonly url: string;
  /** The TCP port actually bound. */
  readonly port: number;
  /**
   * Graceful stop: stops accepting connections, aborts every handler's signal (streams end with
   * UNAVAILABLE), sends HTTP/2 GOAWAY, closes HTTP/1.1 connections as their responses end, and
   * after `shutdownTimeoutMs` destroys whatever is left. Idempotent; never rejects.
   */
  close(): Promise<void>;
}

// RFC 9113 §3.4: every HTTP/2 prior-knowledge connection starts with these 24 bytes.
const HTTP2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

/**
 * Starts one TCP listener that serves Connect, gRPC and gRPC-Web over HTTP/2 cleartext (prior
 * knowledge, what gRPC clients and `buf curl --http2-prior-knowledge` speak) and Connect and
 * gRPC-Web over HTTP/1.1 (browsers, `fetch`, plain curl), plus a fallback handler for other paths.
 *
 * Each connection's first bytes pick the protocol: the HTTP/2 preface goes to an HTTP/2 server,
 * anything else to an HTTP/1.1 server; both share one connect-node handler.
 * Resolves once listening; rejects if the port cannot be bound.
 */
export async function startRpcServer(options: RpcServerOptions): Promise<RpcServer> {
  const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const readMaxBytes = options.readMaxBytes ?? maxMessageBytes;
  const writeMaxBytes = options.writeMaxBytes ?? maxMessageBytes;
  const shutdownTimeoutMs = options.shutdownTimeoutMs ?? DEFAULT_SHUTDOWN_TIMEOUT_MS;
  const handshakeTimeoutMs = options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
  checkPositive("readMaxBytes", readMaxBytes);
  checkPositive("writeMaxBytes", writeMaxBytes);
  checkPositive("shutdownTimeoutMs", shutdownTimeoutMs);
  checkPositive("handshakeTimeoutMs", handshakeTimeoutMs);

  const shutdown = new AbortController();
  const fallback = options.fallback ?? notFound;
  // connect-node's connectNodeAdapter, plus one step: a unary Connect body that is not valid
  // protobuf is the caller's error (INVALID_ARGUMENT), not ours (see decode-errors.ts).
  const router = createConnectRouter({
    readMaxBytes,
    writeMaxBytes,
    acceptCompression: [compressionGzip, compressionBrotli],
    // A misspelt field or enum value in JSON is an error, not silently ignored (a typo in a
    // filter would otherwise return everything).
    jsonOptions: { ignoreUnknownFields: false },
    shutdownSignal: shutdown.signal,
    interceptors: [decodeErrorInterceptor, ...(options.interceptors ?? [])],
  });
  options.routes(router);
  const paths = new Map<string, UniversalHandler>(router.handlers.map((h) => [h.requestPath, h]));
  type NodeRequest = http.IncomingMessage | http2.Http2ServerRequest;
  type NodeResponse = http.ServerResponse | http2.Http2ServerResponse;
  const rpcHandler = (req: NodeRequest, res: NodeResponse): void => {
    const uHandler = paths.get(req.url?.split("?", 2)[0] ?? "");
    if (!uHandler) {
      fallback(req, res);
      return;
    }
    uHandler(universalRequestFromNodeRequest(req, res, undefined, undefined))
      .then((uRes) => (uHandler.method.methodKind === "unary" ? remapUnaryDecodeError(uRes, uHandler.method) : uRes))
      .then((uRes) => universalResponseToNodeResponse(uRes, res))
      .catch((reason: unknown) => {
        if (ConnectError.from(reason).code !== Code.Aborted) reportError(reason instanceof Error ? reason : new Error(String(reason)));
      });
  };
  const handler = options.cors
    ? (req: NodeRequest, res: NodeResponse): void => {
        if (!applyCors(req, res)) rpcHandler(req, res);
      }
    : rpcHandler;

  let closing = false;
  const sockets = new Set<net.Socket>();
  const sniffing = new Set<net.Socket>();
  const sessions = new Set<http2.ServerHttp2Session>();
  let onAllSocketsClosed: (() => void) | undefined;

  const h1 = http.createServer((req, res) => {
    if (closing) {
      // Answer, then hang up: keep-alive would hold the connection past close().
      res.shouldKeepAlive = false;
    }
    res.once("close", () => {
      // closeIdleConnections skips a socket whose response is still being written; retry once
      // this one is done so that close() does not wait for keep-alive timeouts.
      if (closing) setImmediate(() => h1.closeIdleConnections());
    });
    handler(req, res);
  });
  // The HTTP/1.1 server never listens itself, but Node only tracks its connections (which
  // closeIdleConnections and the headers/request timeouts rely on) once it sees 'listening'.
  h1.emit("listening");

  const h2 = http2.createServer((req, res) => handler(req, res));
  h2.on("stream", (stream: http2.ServerHttp2Stream) => {
    // Registered after the compatibility layer's own 'wantTrailers' listener, so this runs once
    // the trailers (the gRPC status) are queued. A client that has not half-closed its side, like
    // an open bidi stream, would keep the stream (and a graceful close()) open forever: end it
    // with RST_STREAM(NO_ERROR), as RFC 9113 §8.1 allows and grpc-go does.
    stream.once("wantTrailers", () => {
      setImmediate(() => {
        if (!stream.closed && !stream.destroyed && stream.state.remoteClose !== 1) {
          stream.close(http2.constants.NGHTTP2_NO_ERROR);
        }
      });
    });
  });
  const reportError = options.onError ?? ((): void => undefined);
  h2.on("sessionError", (error: Error) => reportError(error));
  h2.on("session", (session: http2.ServerHttp2Session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
    if (closing) session.close();
  });

  const listener = options.tls
    ? tls.createServer({
        cert: options.tls.cert,
        key: options.tls.key,
        ALPNProtocols: ["h2", "http/1.1"],
        minVersion: "TLSv1.2",
        handshakeTimeout: handshakeTimeoutMs,
        noDelay: true,
        keepAlive: true,
        keepAliveInitialDelay: 60_000,
      })
    : net.createServer({ noDelay: true, keepAlive: true, keepAliveInitialDelay: 60_000 });
  // A failed TLS handshake concerns one client only.
  if (options.tls) listener.on("tlsClientError", (err: Error, socket: net.Socket) => socket.destroy());
  listener.on(options.tls ? "secureConnection" : "connection", (socket: net.Socket) => {
    if (closing) {
      socket.destroy();
      return;
    }
    sockets.add(socket);
    socket.once("close", () => {
      sockets.delete(socket);
      sniffing.delete(socket);
      if (sockets.size === 0) onAllSocketsClosed?.();
    });
    if (socket instanceof tls.TLSSocket) {
      // ALPN already chose: "h2" is HTTP/2, anything else (http/1.1, or no ALPN) HTTP/1.1.
      (socket.alpnProtocol === "h2" ? h2 : h1).emit("connection", socket);
    } else {
      sniff(socket);
    }
  });

  function sniff(socket: net.Socket): void {
    sniffing.add(socket);
    let head: Buffer = Buffer.alloc(0);
    const drop = (): void => {
      socket.destroy();
    };
    const onData = (chunk: Buffer): void => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      const n = Math.min(head.length, HTTP2_PREFACE.length);
      const looksLikeHttp2 = head.subarray(0, n).equals(HTTP2_PREFACE.subarray(0, n));
      // A partial preface could still turn out either way: wait for more bytes.
      if (looksLikeHttp2 && head.length < HTTP2_PREFACE.length) return;

      socket.off("data", onData);
      socket.off("error", drop);
      socket.off("timeout", drop);
      socket.setTimeout(0);
      socket.pause();
      socket.unshift(head);
      sniffing.delete(socket);
      if (closing) {
        socket.destroy();
        return;
      }
      if (looksLikeHttp2) {
        // The HTTP/2 session reads what is already buffered on the socket itself (next tick).
        h2.emit("connection", socket);
      } else {
        h1.emit("connection", socket);
        // The HTTP/1.1 parser takes new bytes straight from the socket handle, but the bytes we
        // put back only flow through 'data': resume now, in this tick, so that they are parsed
        // before anything that arrives later.
        socket.resume();
      }
    };
    socket.on("data", onData);
    socket.on("error", drop);
    socket.setTimeout(handshakeTimeoutMs, drop);
  }

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => {
      h1.close(); // stops the connection checks started by the 'listening' above
      reject(err);
    };
    listener.once("error", onError);
    listener.listen({ host: options.host, port: options.port }, () => {
      listener.off("error", onError);
      listener.on("error", reportError);
      resolve();
    });
  });
  const address = listener.address() as net.AddressInfo;
  const url = `${options.tls ? "https" : "http"}://${urlHost(options.host)}:${address.port}`;

  let closed: Promise<void> | undefined;
  async function closeOnce(): Promise<void> {
    closing = true;
    const listenerClosed = new Promise<void>((resolve) => listener.close(() => resolve()));
    const drained = new Promise<void>((resolve) => {
      onAllSocketsClosed = resolve;
      if (sockets.size === 0) resolve();
    });
    // Handlers see their context signal abort; streams end with this error.
    shutdown.abort(new ConnectError("server is shutting down", Code.Unavailable));
    for (const socket of sniffing) socket.destroy();
    for (const session of sessions) session.close();
    // Destroys idle keep-alive connections and stops the timeout checks; the rest close as their
    // responses end (see the request listener).
    h1.close();

    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => (timer = setTimeout(resolve, shutdownTimeoutMs)));
    await Promise.race([drained, deadline]);
    clearTimeout(timer);
    for (const session of sessions) session.destroy();
    for (const socket of sockets) socket.destroy();
    await listenerClosed;
  }

  return {
    url,
    port: address.port,
    close() {
      closed ??= closeOnce();
      return closed;
    },
  };
}

function notFound(_request: unknown, response: http.ServerResponse | http2.Http2ServerResponse): void {
  response.writeHead(404);
  response.end();
}

function urlHost(host: string): string {
  if (host === "" || host === "0.0.0.0") return "127.0.0.1";
  if (host === "::") return "[::1]";
  return host.includes(":") ? `[${host}]` : host;
}

function checkPositive(name: string, value: number): void {
  if (!Number.isFinite(value) || value <= 0) {
    throw new RangeError(`${name} must be a positive number, got ${value}`);
  }
}
