// Builds the Connect transport for a client and owns the connections it opens, so
// that closing the client frees them (a Node process or a test must not hang on an
// idle HTTP/2 session or a keep-alive socket).
import * as http from "node:http";
import * as https from "node:https";
import type { Interceptor, Transport } from "@connectrpc/connect";
import {
  Http2SessionManager,
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";

/** Wire protocol. All three are served on the control plane's one port. */
export type NgpuProtocol = "connect" | "grpc" | "grpc-web";

/** HTTP version; gRPC needs "2". Plain-text URLs (http://) use HTTP/2 without TLS (h2c). */
export type NgpuHttpVersion = "1.1" | "2";

export interface TransportOptions {
  readonly baseUrl: string;
  readonly protocol: NgpuProtocol;
  readonly httpVersion: NgpuHttpVersion;
  readonly interceptors: Interceptor[];
}

/** A transport and the way to drop its connections. */
export interface OwnedTransport {
  readonly transport: Transport;
  /** Closes every connection now; calls still in flight fail. */
  close(): void;
}

export function createOwnedTransport(options: TransportOptions): OwnedTransport {
  const { baseUrl, protocol, httpVersion, interceptors } = options;
  if (protocol === "grpc" && httpVersion !== "2") {
    throw new TypeError('createNgpuClient: protocol "grpc" needs httpVersion "2"');
  }
  // Binary protobuf on the wire: smaller and faster than JSON, and every server
  // protocol handler of the control plane accepts it.
  const common = { baseUrl, interceptors, useBinaryFormat: true } as const;
  if (httpVersion === "2") {
    const sessionManager = new Http2SessionManager(baseUrl);
    const http2 = { ...common, httpVersion: "2", sessionManager } as const;
    const transport =
      protocol === "grpc"
        ? createGrpcTransport(http2)
        : protocol === "grpc-web"
          ? createGrpcWebTransport(http2)
          : createConnectTransport(http2);
    return { transport, close: () => sessionManager.abort() };
  }
  const agent = baseUrl.startsWith("https:") ? new https.Agent({ keepAlive: true }) : new http.Agent({ keepAlive: true });
  const http1 = { ...common, httpVersion: "1.1", nodeOptions: { agent } } as const;
  const transport = protocol === "grpc-web" ? createGrpcWebTransport(http1) : createConnectTransport(http1);
  return { transport, close: () => agent.destroy() };
}
