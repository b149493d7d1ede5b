import http2 from "node:http2";
import net from "node:net";
import {
  create,
  fromBinary,
  fromJson,
  toBinary,
  toJson,
  type DescMessage,
  type DescService,
  type MessageShape,
} from "@bufbuild/protobuf";
import {
  FileDescriptorProtoSchema,
  FileDescriptorSetSchema,
  type FileDescriptorProto,
} from "@bufbuild/protobuf/wkt";
import { createFileRegistry, createRegistry } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createClient,
  createRouterTransport,
  type Client,
  type Transport,
} from "@connectrpc/connect";
import { createGrpcTransport, createGrpcWebTransport, Http2SessionManager } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHealth, ServingStatus, type HealthService } from "../../control-plane/api/health.js";
import { registerReflection } from "../../control-plane/api/reflection.js";
import { startRpcServer, type RpcServer } from "../../control-plane/api/rpc-server.js";
import { Health, HealthCheckRequestSchema, HealthCheckResponseSchema } from "../../gen/grpc/health/v1/health_pb.js";
import { ServerReflection as ReflectionV1, type ServerReflectionRequest } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ReflectionV1Alpha } from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import {
  AppService,
  GetAppRequestSchema,
  GetAppResponseSchema,
  ListAppsRequestSchema,
  type GetAppResponse,
} from "../../gen/ngpu/v1/app_pb.js";
import { file_ngpu_v1_task } from "../../gen/ngpu/v1/task_pb.js";
import { grpcJsClient, unary } from "../helpers/grpc-js.js";
import { bufCurl } from "../helpers/buf-curl.js";

const MAX_MESSAGE_BYTES = 64 * 1024;
const ALL_SERVICES = [
  "grpc.health.v1.Health",
  "grpc.reflection.v1.ServerReflection",
  "grpc.reflection.v1alpha.ServerReflection",
  "ngpu.v1.AppService",
];

/** A tiny AppService: GetApp answers a fixed app (with a map field), ListApps is refused. */
function appRoutes(router: Parameters<Parameters<typeof startRpcServer>[0]["routes"]>[0]): void {
  router.service(AppService, {
    getApp(request) {
      return create(GetAppResponseSchema, {
        app: {
          id: "app_1",
          workspaceId: "ws_1",
          name: request.app,
          version: 3,
          runtime: { kind: { case: "process", value: { command: ["python", "predict.py"] } } },
          env: { MODEL: "sdxl", THREADS: "4" },
          inputSchema: { type: "object" },
          timeoutMs: 60_000n,
          createTime: { seconds: 1_700_000_000n },
          // "huge" makes the response exceed the write limit.
          description: request.app === "huge" ? "x".repeat(MAX_MESSAGE_BYTES + 1) : "",
        },
      });
    },
    listApps() {
      throw new ConnectError("listing is not here yet", Code.Unimplemented);
    },
  });
}

/**
 * Orders files so that each comes after its imports, as a FileDescriptorSet for protobuf-es must
 * (its resolver callback form trips over diamond imports, e.g. timestamp.proto via two paths).
 */
function dependenciesFirst(files: readonly FileDescriptorProto[]): FileDescriptorProto[] {
  const byName = new Map(files.map((f) => [f.name, f]));
  const out: FileDescriptorProto[] = [];
  const visit = (file: FileDescriptorProto): void => {
    if (out.includes(file)) return;
    for (const dep of file.dependency) {
      const found = byName.get(dep);
      if (found === undefined) throw new Error(`${file.name} imports ${dep}, which reflection did not send`);
      visit(found);
    }
    out.push(file);
  };
  files.forEach(visit);
  return out;
}

function expectFixedApp(response: GetAppResponse, name: string): void {
  expect(response.app?.name).toBe(name);
  expect(response.app?.env).toEqual({ MODEL: "sdxl", THREADS: "4" });
  expect(response.app?.timeoutMs).toBe(60_000n);
}

describe("rpc server: one port for gRPC, gRPC-Web and Connect", () => {
  let server: RpcServer;
  let health: HealthService;
  let h2Sessions: Http2SessionManager;
  let grpcTransport: Transport;

  beforeAll(async () => {
    health = createHealth();
    server = await startRpcServer({
      host: "127.0.0.1",
      port: 0,
      maxMessageBytes: MAX_MESSAGE_BYTES,
      routes(router) {
        appRoutes(router);
        health.register(router);
        registerReflection(router);
      },
    });
    h2Sessions = new Http2SessionManager(server.url);
    grpcTransport = createGrpcTransport({ baseUrl: server.url, sessionManager: h2Sessions });
  });

  afterAll(async () => {
    // The server only finishes closing HTTP/2 connections the client holds open once they go.
    h2Sessions.abort();
    await server.close();
  });

  describe("buf curl (Go client, server reflection)", () => {
    it("lists every registered service over gRPC, with v1 and v1alpha reflection", async () => {
      for (const reflectProtocol of ["grpc-v1", "grpc-v1alpha"]) {
        const result = await bufCurl([
          "--http2-prior-knowledge",
          "--protocol",
          "grpc",
          "--reflect-protocol",
          reflectProtocol,
          "--list-services",
          server.url,
        ]);
        expect(result.stderr).toBe("");
        expect(result.code).toBe(0);
        expect(result.stdout.trim().split("\n").sort()).toEqual(ALL_SERVICES);
      }
    });

    it("lists methods", async () => {
      const result = await bufCurl(["--http2-prior-knowledge", "--protocol", "grpc", "--list-methods", server.url]);
      expect(result.code).toBe(0);
      const methods = result.stdout.trim().split("\n");
      expect(methods).toContain("ngpu.v1.AppService/GetApp");
      expect(methods).toContain("ngpu.v1.AppService/DeployApp");
      expect(methods).toContain("grpc.health.v1.Health/Watch");
    });

    it.each(["grpc", "grpcweb", "connect"])(
      "calls GetApp over HTTP/2 with --protocol %s, encoding JSON from reflected descriptors (map, Struct, Timestamp)",
      async (protocol) => {
        const result = await bufCurl([
          "--http2-prior-knowledge",
          "--protocol",
          protocol,
          "--data",
          '{"app": "sdxl"}',
          `${server.url}/ngpu.v1.AppService/GetApp`,
        ]);
        expect(result.stderr).toBe("");
        expect(result.code).toBe(0);
        expect(JSON.parse(result.stdout)).toEqual({
          app: {
            id: "app_1",
            workspaceId: "ws_1",
            name: "sdxl",
            version: 3,
            runtime: { process: { command: ["python", "predict.py"] } },
            env: { MODEL: "sdxl", THREADS: "4" },
            inputSchema: { type: "object" },
            timeoutMs: "60000",
            createTime: "2023-11-14T22:13:20Z",
          },
        });
      },
    );

    // buf curl's reflection client needs HTTP/2 (bidi stream); over HTTP/1.1 it takes the schema
    // from the local buf module instead.
    it.each(["connect", "grpcweb"])("calls GetApp over HTTP/1.1 with --protocol %s and --schema", async (protocol) => {
      const result = await bufCurl([
        "--schema",
        ".",
        "--protocol",
        protocol,
        "--verbose",
        "--data",
        '{"app": "one-one"}',
        `${server.url}/ngpu.v1.AppService/GetApp`,
      ]);
      expect(result.code).toBe(0);
      expect(result.stderr).toMatch(/HTTP\/1\.1 200 OK/);
      expect(JSON.parse(result.stdout).app.env).toEqual({ MODEL: "sdxl", THREADS: "4" });
    });

    it("reports handler errors as gRPC codes (exit code = code << 3)", async () => {
      const refused = await bufCurl(["--protocol", "grpc", `${server.url}/ngpu.v1.AppService/ListApps`]);
      expect(refused.code).toBe(Code.Unimplemented << 3);
      expect(refused.stderr).toMatch(/listing is not here yet/);
      const missing = await bufCurl(["--protocol", "grpc", `${server.url}/ngpu.v1.AppService/DeployApp`]);
      expect(missing.code).toBe(Code.Unimplemented << 3);
    });

    it("calls Health.Check", async () => {
      const result = await bufCurl(["--protocol", "grpc", "--data", "{}", `${server.url}/grpc.health.v1.Health/Check`]);
      expect(result.code).toBe(0);
      expect(JSON.parse(result.stdout)).toEqual({ status: "SERVING" });
    });
  });

  describe("reflection answers", () => {
    async function reflect(
      service: typeof ReflectionV1 | typeof ReflectionV1Alpha,
      messageRequest: ServerReflectionRequest["messageRequest"],
    ) {
      const client = createClient(service as typeof ReflectionV1, grpcTransport);
      const responses = [];
      for await (const response of client.serverReflectionInfo(
        (async function* () {
          yield { host: "localhost", messageRequest };
        })(),
      )) {
        responses.push(response);
      }
      expect(responses).toHaveLength(1);
      return responses[0]!;
    }

    function decodeFiles(response: Awaited<ReturnType<typeof reflect>>): FileDescriptorProto[] {
      if (response.messageResponse.case !== "fileDescriptorResponse") {
        throw new Error(`expected files, got ${response.messageResponse.case}`);
      }
      return response.messageResponse.value.fileDescriptorProto.map((bytes) =>
        fromBinary(FileDescriptorProtoSchema, bytes),
      );
    }

    it.each([
      ["ngpu.v1.AppService"],
      ["ngpu.v1.AppService.GetApp"],
      ["ngpu.v1.App"],
      ["ngpu.v1.App.EnvEntry"],
      [".ngpu.v1.App.env"],
      ["ngpu.v1.Runtime.kind"],
    ])("file_containing_symbol %s → app.proto first, then its dependencies", async (symbol) => {
      const files = decodeFiles(await reflect(ReflectionV1, { case: "fileContainingSymbol", value: symbol }));
      expect(files[0]?.name).toBe("ngpu/v1/app.proto");
      expect(files.map((f) => f.name).sort()).toEqual([
        "google/protobuf/struct.proto",
        "google/protobuf/timestamp.proto",
        "ngpu/v1/app.proto",
        "ngpu/v1/gpu.proto",
      ]);
    });

    it("serves descriptors complete enough to rebuild the schema, map entries included", async () => {
      for (const service of [ReflectionV1, ReflectionV1Alpha]) {
        const files = decodeFiles(await reflect(service, { case: "fileByFilename", value: "ngpu/v1/app.proto" }));
        const app = files[0]?.messageType.find((m) => m.name === "App");
        const envEntry = app?.nestedType.find((m) => m.name === "EnvEntry");
        expect(envEntry?.options?.mapEntry).toBe(true);
        expect(envEntry?.field.map((f) => f.name)).toEqual(["key", "value"]);

        // What buf curl / grpcurl do: build a registry from the answer and transcode with it.
        const registry = createFileRegistry(create(FileDescriptorSetSchema, { file: dependenciesFirst(files) }));
        const schema = registry.getMessage("ngpu.v1.GetAppResponse") as DescMessage;
        const json = { app: { name: "n", env: { K: "v" }, inputSchema: { a: 1 } } };
        const decoded = fromBinary(schema, toBinary(schema, fromJson(schema, json)));
        expect(toJson(schema, decoded)).toEqual(json);
      }
    });

    it("lists services over v1 and v1alpha", async () => {
      for (const service of [ReflectionV1, ReflectionV1Alpha]) {
        const response = await reflect(service, { case: "listServices", value: "*" });
        expect(response.messageResponse.case).toBe("listServicesResponse");
        if (response.messageResponse.case !== "listServicesResponse") return;
        expect(response.messageResponse.value.service.map((s) => s.name).sort()).toEqual(ALL_SERVICES);
        expect(response.validHost).toBe("localhost");
        expect(response.originalRequest?.messageRequest.case).toBe("listServices");
      }
    });

    it("answers well-known files by name and enum values by sibling scope", async () => {
      const wkt = decodeFiles(await reflect(ReflectionV1, { case: "fileByFilename", value: "google/protobuf/struct.proto" }));
      expect(wkt.map((f) => f.name)).toEqual(["google/protobuf/struct.proto"]);
      const health = decodeFiles(
        await reflect(ReflectionV1, { case: "fileContainingSymbol", value: "grpc.health.v1.HealthCheckResponse.SERVING" }),
      );
      expect(health.map((f) => f.name)).toEqual(["grpc/health/v1/health.proto"]);
    });

    it("answers NOT_FOUND (5) in error_response for unknown symbols, files and extensions", async () => {
      const requests: ServerReflectionRequest["messageRequest"][] = [
        { case: "fileContainingSymbol", value: "ngpu.v1.Nope" },
        { case: "fileByFilename", value: "nope.proto" },
        {
          case: "fileContainingExtension",
          value: create(
            // Same shape in v1 and v1alpha; the v1 schema is what this client sends.
            (await import("../../gen/grpc/reflection/v1/reflection_pb.js")).ExtensionRequestSchema,
            { containingType: "ngpu.v1.App", extensionNumber: 1000 },
          ),
        },
        { case: "allExtensionNumbersOfType", value: "ngpu.v1.Nope" },
      ];
      for (const messageRequest of requests) {
        const response = await reflect(ReflectionV1, messageRequest);
        expect(response.messageResponse.case).toBe("errorResponse");
        expect(response.messageResponse.value).toMatchObject({ errorCode: 5 });
      }
      const numbers = await reflect(ReflectionV1, { case: "allExtensionNumbersOfType", value: "ngpu.v1.App" });
      expect(numbers.messageResponse).toMatchObject({
        case: "allExtensionNumbersResponse",
        value: { baseTypeName: "ngpu.v1.App", extensionNumber: [] },
      });
    });
  });

  describe("@grpc/grpc-js client (HTTP/2, no proto-loader)", () => {
    /** A grpc-js service definition for a protobuf-es service, with protobuf-es (de)serializers. */
    const clients: grpc.Client[] = [];
    afterAll(() => clients.forEach((c) => c.close()));

    function connectGrpcJs(service: DescService): grpc.Client {
      const client = grpcJsClient(service, server.url);
      clients.push(client);
      return client;
    }

    it("calls GetApp and Health.Check", async () => {
      const apps = connectGrpcJs(AppService);
      const response = await unary<GetAppResponse>(apps, "GetApp", create(GetAppRequestSchema, { app: "from-grpc-js" }));
      expectFixedApp(response, "from-grpc-js");

      const healthClient = connectGrpcJs(Health);
      const status = await unary<{ status: ServingStatus }>(healthClient, "Check", create(HealthCheckRequestSchema, {}));
      expect(status.status).toBe(ServingStatus.SERVING);
    });

    it("maps handler errors to gRPC status codes", async () => {
      const apps = connectGrpcJs(AppService);
      await expect(unary(apps, "ListApps", create(ListAppsRequestSchema))).rejects.toMatchObject({ code: grpc.status.UNIMPLEMENTED });
    });
  });

  describe("HTTP/1.1", () => {
    it("serves Connect JSON to plain fetch", async () => {
      const res = await fetch(`${server.url}/ngpu.v1.AppService/GetApp`, {
        method: "POST",
        headers: { "content-type": "application/json", "connect-protocol-version": "1" },
        body: JSON.stringify({ app: "from-fetch" }),
      });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { app: { name: string; env: Record<string, string> } };
      expect(body.app.name).toBe("from-fetch");
      expect(body.app.env).toEqual({ MODEL: "sdxl", THREADS: "4" });
    });

    it("answers unknown paths with the fallback's 404, over HTTP/1.1 and HTTP/2", async () => {
      const res = await fetch(`${server.url}/dashboard/nope`);
      expect(res.status).toBe(404);
      await res.arrayBuffer();

      const session = http2.connect(server.url);
      try {
        const status = await new Promise<number>((resolve, reject) => {
          const stream = session.request({ ":path": "/dashboard/nope" });
          stream.on("response", (headers) => resolve(Number(headers[":status"])));
          stream.on("error", reject);
          stream.resume();
          stream.end();
        });
        expect(status).toBe(404);
      } finally {
        session.close();
      }
    });

    it("serves gRPC-Web to connect-node's HTTP/1.1 transport", async () => {
      const client = createClient(
        AppService,
        createGrpcWebTransport({ baseUrl: server.url, httpVersion: "1.1" }),
      );
      expectFixedApp(await client.getApp({ app: "from-grpc-web" }), "from-grpc-web");
      await expect(client.listApps({})).rejects.toMatchObject({ code: Code.Unimplemented });
    });
  });

  describe("message size limits", () => {
    it("rejects an oversized request with RESOURCE_EXHAUSTED (gRPC over HTTP/2)", async () => {
      const client = createClient(AppService, grpcTransport);
      await expect(client.getApp({ app: "x".repeat(MAX_MESSAGE_BYTES + 1) })).rejects.toMatchObject({
        code: Code.ResourceExhausted,
      });
    });

    it("rejects an oversized response with RESOURCE_EXHAUSTED (gRPC-Web over HTTP/1.1)", async () => {
      const client = createClient(AppService, createGrpcWebTransport({ baseUrl: server.url, httpVersion: "1.1" }));
      await expect(client.getApp({ app: "huge" })).rejects.toMatchObject({ code: Code.ResourceExhausted });
    });

    it("rejects an oversized Connect JSON body over HTTP/1.1", async () => {
      const res = await fetch(`${server.url}/ngpu.v1.AppService/GetApp`, {
        method: "POST",
        headers: { "content-type": "application/json", "connect-protocol-version": "1" },
        body: JSON.stringify({ app: "x".repeat(MAX_MESSAGE_BYTES + 1) }),
      });
      expect(await res.json()).toMatchObject({ code: "resource_exhausted" });
    });
  });

  describe("health", () => {
    it("answers NOT_FOUND for an unknown service and follows status changes in Watch", async () => {
      const client = createClient(Health, grpcTransport);
      await expect(client.check({ service: "ngpu.v1.AppService" })).rejects.toMatchObject({ code: Code.NotFound });

      const abort = new AbortController();
      const seen: ServingStatus[] = [];
      const stream = client.watch({ service: "ngpu.v1.AppService" }, { signal: abort.signal });
      const iterator = stream[Symbol.asyncIterator]();
      const next = async (): Promise<ServingStatus> => {
        const { value, done } = await iterator.next();
        if (done === true) throw new Error("watch ended");
        seen.push(value.status);
        return value.status;
      };
      expect(await next()).toBe(ServingStatus.SERVICE_UNKNOWN);
      health.setStatus("ngpu.v1.AppService", ServingStatus.SERVING);
      expect(await next()).toBe(ServingStatus.SERVING);
      health.setStatus("ngpu.v1.AppService", ServingStatus.SERVING); // no change: nothing sent
      health.setStatus("ngpu.v1.AppService", ServingStatus.NOT_SERVING);
      expect(await next()).toBe(ServingStatus.NOT_SERVING);
      expect(await client.check({ service: "ngpu.v1.AppService" })).toEqual(
        create(HealthCheckResponseSchema, { status: ServingStatus.NOT_SERVING }),
      );
      abort.abort();
      await expect(iterator.next()).rejects.toMatchObject({ code: Code.Canceled });
      expect(seen).toEqual([ServingStatus.SERVICE_UNKNOWN, ServingStatus.SERVING, ServingStatus.NOT_SERVING]);
      health.clearStatus("ngpu.v1.AppService");
    });
  });
});

describe("reflection and health in memory", () => {
  it("resolves extra files (a Registry) without listing their services", async () => {
    const transport = createRouterTransport((router) =>
      registerReflection(router, { files: createRegistry(file_ngpu_v1_task) }),
    );
    const client = createClient(ReflectionV1, transport);
    const responses = [];
    for await (const response of client.serverReflectionInfo(
      (async function* () {
        yield { messageRequest: { case: "listServices" as const, value: "" } };
        yield { messageRequest: { case: "fileContainingSymbol" as const, value: "ngpu.v1.TaskService.SubmitTask" } };
      })(),
    )) {
      responses.push(response);
    }
    expect(responses[0]?.messageResponse).toMatchObject({
      case: "listServicesResponse",
      value: { service: [{ name: "grpc.reflection.v1.ServerReflection" }, { name: "grpc.reflection.v1alpha.ServerReflection" }] },
    });
    expect(responses[1]?.messageResponse.case).toBe("fileDescriptorResponse");
  });

  it("health shutdown() marks everything NOT_SERVING and ignores updates until resume()", async () => {
    const health = createHealth({ initial: { "": ServingStatus.SERVING, "ngpu.v1.AppService": ServingStatus.SERVING } });
    const client = createClient(Health, createRouterTransport((router) => health.register(router)));
    const abort = new AbortController();
    const watch = client.watch({ service: "ngpu.v1.AppService" }, { signal: abort.signal })[Symbol.asyncIterator]();
    expect((await watch.next()).value?.status).toBe(ServingStatus.SERVING);

    health.shutdown();
    expect((await watch.next()).value?.status).toBe(ServingStatus.NOT_SERVING);
    health.setStatus("", ServingStatus.SERVING);
    expect((await client.check({})).status).toBe(ServingStatus.NOT_SERVING);

    health.resume();
    expect((await watch.next()).value?.status).toBe(ServingStatus.SERVING);
    expect((await client.check({})).status).toBe(ServingStatus.SERVING);
    abort.abort();
  });
});

describe("rpc server connections", () => {
  let server: RpcServer;
  beforeAll(async () => {
    server = await startRpcServer({ host: "127.0.0.1", port: 0, routes: appRoutes, handshakeTimeoutMs: 200 });
  });
  afterAll(() => server.close());

  function rawConnect(): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(server.port, "127.0.0.1", () => resolve(socket));
      socket.once("error", reject);
    });
  }

  it("parses an HTTP/1.1 request whose first bytes arrive in pieces", async () => {
    const socket = await rawConnect();
    const received: Buffer[] = [];
    socket.on("data", (chunk: Buffer) => received.push(chunk));
    const ended = new Promise((resolve) => socket.once("close", resolve));
    // "PR" could still be an HTTP/2 preface: the server must wait for more before choosing.
    for (const piece of ["PR", "OPFIND /nope HTTP/1.1\r\nHost: x\r\n", "Connection: close\r\n\r\n"]) {
      await new Promise<void>((resolve, reject) => socket.write(piece, (err) => (err ? reject(err) : resolve())));
    }
    await ended;
    expect(Buffer.concat(received).toString("latin1")).toMatch(/^HTTP\/1\.1 404 /);
  });

  it("drops a connection that stays silent past handshakeTimeoutMs", async () => {
    const socket = await rawConnect();
    await new Promise((resolve) => socket.once("close", resolve));
    expect(socket.destroyed).toBe(true);
  });
});

describe("rpc server close()", () => {
  it("resolves promptly with an open Health.Watch, an idle reflection stream and idle connections", async () => {
    const health = createHealth();
    const server = await startRpcServer({
      host: "127.0.0.1",
      port: 0,
      // Far longer than the test allows: close() must not be waiting for the force-destroy.
      shutdownTimeoutMs: 30_000,
      routes(router) {
        appRoutes(router);
        health.register(router);
        registerReflection(router);
      },
    });
    const sessions = new Http2SessionManager(server.url);
    try {
      const transport = createGrpcTransport({ baseUrl: server.url, sessionManager: sessions });
      const healthClient = createClient(Health, transport);
      const watch = healthClient.watch({ service: "" })[Symbol.asyncIterator]();
      expect((await watch.next()).value?.status).toBe(ServingStatus.SERVING);

      // A reflection stream whose client never half-closes.
      const reflection: Client<typeof ReflectionV1> = createClient(ReflectionV1, transport);
      const reflectionStream = reflection
        .serverReflectionInfo(
          (async function* () {
            yield { messageRequest: { case: "listServices" as const, value: "" } };
            await new Promise(() => undefined);
          })(),
        )
        [Symbol.asyncIterator]();
      expect((await reflectionStream.next()).value?.messageResponse.case).toBe("listServicesResponse");

      // An idle HTTP/1.1 keep-alive connection.
      const res = await fetch(`${server.url}/ngpu.v1.AppService/GetApp`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{}",
      });
      expect(res.status).toBe(200);
      await res.arrayBuffer();

      const started = performance.now();
      await server.close();
      expect(performance.now() - started).toBeLessThan(5_000);

      await expect(watch.next()).rejects.toMatchObject({ code: Code.Unavailable });
      await expect(reflectionStream.next()).rejects.toMatchObject({ code: Code.Unavailable });
      // Idempotent.
      await server.close();
    } finally {
      sessions.abort();
      await server.close();
    }
  });

  it("rejects when the port is taken", async () => {
    const first = await startRpcServer({ host: "127.0.0.1", port: 0, routes: appRoutes });
    try {
      await expect(startRpcServer({ host: "127.0.0.1", port: first.port, routes: appRoutes })).rejects.toMatchObject({
        code: "EADDRINUSE",
      });
    } finally {
      await first.close();
    }
  });
});
