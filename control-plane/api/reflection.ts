import { create, fromBinary, toBinary, type DescFile, type FileRegistry, type Registry } from "@bufbuild/protobuf";
import {
  FileDescriptorProtoSchema,
  type DescriptorProto,
  type EnumDescriptorProto,
  type FieldDescriptorProto,
} from "@bufbuild/protobuf/wkt";
import { Code, type ConnectRouter, type HandlerContext } from "@connectrpc/connect";
import {
  ServerReflection as ServerReflectionV1,
  ServerReflectionRequestSchema as RequestV1Schema,
  ServerReflectionResponseSchema as ResponseV1Schema,
  type ServerReflectionRequest as RequestV1,
  type ServerReflectionResponse as ResponseV1,
} from "../../gen/grpc/reflection/v1/reflection_pb.js";
import {
  ServerReflection as ServerReflectionV1Alpha,
  ServerReflectionRequestSchema as RequestV1AlphaSchema,
  ServerReflectionResponseSchema as ResponseV1AlphaSchema,
  type ServerReflectionRequest as RequestV1Alpha,
  type ServerReflectionResponse as ResponseV1Alpha,
} from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";

/** Options for {@link registerReflection}. */
export interface ReflectionOptions {
  /**
   * Extra schema to make resolvable by symbol and file name, on top of the files of every service
   * registered on the router (which are always included, with their dependencies). A registry
   * contributes the files of all its types; a `FileRegistry` all its files.
   */
  readonly files?: readonly DescFile[] | Registry;
}

/**
 * Registers gRPC server reflection, both `grpc.reflection.v1.ServerReflection` and the older
 * `grpc.reflection.v1alpha.ServerReflection` (some clients only speak that one; buf curl falls back to it).
 *
 * list_services answers every service registered on `router`, looked up when the first request
 * arrives, so register reflection before or after the other services, as convenient.
 * File answers carry the requested file first, then all its transitive dependencies, serialized
 * from protobuf-es's own descriptors (map entry types and well-known types included).
 */
export function registerReflection(router: ConnectRouter, options: ReflectionOptions = {}): void {
  let index: ReflectionIndex | undefined;
  // Built lazily: when this runs, other services may not be registered on the router yet.
  const getIndex = (): ReflectionIndex => (index ??= buildIndex(router, options.files));

  router.service(ServerReflectionV1, {
    async *serverReflectionInfo(requests, context) {
      const idx = getIndex();
      for await (const request of untilAborted(requests, context)) {
        yield answer(idx, request);
      }
    },
  });
  // v1alpha is wire-identical to v1: transcode through the v1 implementation.
  router.service(ServerReflectionV1Alpha, {
    async *serverReflectionInfo(requests, context) {
      const idx = getIndex();
      for await (const request of untilAborted(requests, context)) {
        yield toV1Alpha(answer(idx, toV1(request)));
      }
    },
  });
}

function toV1(request: RequestV1Alpha): RequestV1 {
  return fromBinary(RequestV1Schema, toBinary(RequestV1AlphaSchema, request));
}

function toV1Alpha(response: ResponseV1): ResponseV1Alpha {
  return fromBinary(ResponseV1AlphaSchema, toBinary(ResponseV1Schema, response));
}

interface ReflectionIndex {
  /** Fully-qualified names of the services registered on the router, in registration order. */
  readonly services: readonly string[];
  /** By proto file name, e.g. "ngpu/v1/app.proto". */
  readonly filesByName: ReadonlyMap<string, DescFile>;
  /** Fully-qualified symbol (no leading dot) → the file that defines it. */
  readonly fileBySymbol: ReadonlyMap<string, DescFile>;
  /** Extendee type name (no leading dot) → extension field number → the file declaring it. */
  readonly extensionsByExtendee: ReadonlyMap<string, ReadonlyMap<number, DescFile>>;
  /** Serialized FileDescriptorProto per file, filled on first use. */
  readonly serialized: Map<DescFile, Uint8Array>;
}

function buildIndex(router: ConnectRouter, extra: ReflectionOptions["files"]): ReflectionIndex {
  const services: string[] = [];
  const roots: DescFile[] = [];
  for (const handler of router.handlers) {
    if (!services.includes(handler.service.typeName)) {
      services.push(handler.service.typeName);
      roots.push(handler.service.file);
    }
  }
  roots.push(...filesOf(extra));

  const filesByName = new Map<string, DescFile>();
  const visit = (file: DescFile): void => {
    if (filesByName.has(file.proto.name)) return;
    filesByName.set(file.proto.name, file);
    file.dependencies.forEach(visit);
  };
  roots.forEach(visit);

  // Walk the FileDescriptorProtos rather than protobuf-es's Desc objects: those leave out the
  // synthetic map entry messages (App.EnvEntry), which clients may still ask for.
  const fileBySymbol = new Map<string, DescFile>();
  const extensionsByExtendee = new Map<string, Map<number, DescFile>>();
  for (const file of filesByName.values()) {
    const add = (symbol: string): void => {
      fileBySymbol.set(symbol, file);
    };
    const addExtensions = (scope: string, extensions: readonly FieldDescriptorProto[]): void => {
      for (const ext of extensions) {
        add(scope + ext.name);
        const extendee = stripDot(ext.extendee);
        let byNumber = extensionsByExtendee.get(extendee);
        if (byNumber === undefined) extensionsByExtendee.set(extendee, (byNumber = new Map()));
        byNumber.set(ext.number, file);
      }
    };
    const addEnums = (scope: string, enums: readonly EnumDescriptorProto[]): void => {
      for (const e of enums) {
        add(scope + e.name);
        // Enum values are scoped as siblings of their enum (C++ rules), not inside it.
        for (const value of e.value) add(scope + value.name);
      }
    };
    const addMessages = (scope: string, messages: readonly DescriptorProto[]): void => {
      for (const m of messages) {
        const name = scope + m.name;
        add(name);
        for (const field of m.field) add(`${name}.${field.name}`);
        for (const oneof of m.oneofDecl) add(`${name}.${oneof.name}`);
        addMessages(`${name}.`, m.nestedType);
        addEnums(`${name}.`, m.enumType);
        addExtensions(`${name}.`, m.extension);
      }
    };
    const pkg = file.proto.package === "" ? "" : `${file.proto.package}.`;
    addMessages(pkg, file.proto.messageType);
    addEnums(pkg, file.proto.enumType);
    addExtensions(pkg, file.proto.extension);
    for (const service of file.proto.service) {
      add(pkg + service.name);
      for (const method of service.method) add(`${pkg}${service.name}.${method.name}`);
    }
  }
  return { services, filesByName, fileBySymbol, extensionsByExtendee, serialized: new Map() };
}

function filesOf(source: ReflectionOptions["files"]): DescFile[] {
  if (source === undefined) return [];
  if (isFileRegistry(source)) return [...source.files];
  if ("kind" in source && source.kind === "registry") return [...source].map((desc) => desc.file);
  return [...(source as readonly DescFile[])];
}

function isFileRegistry(source: NonNullable<ReflectionOptions["files"]>): source is FileRegistry {
  return "kind" in source && source.kind === "registry" && "files" in source;
}

function answer(index: ReflectionIndex, request: RequestV1): ResponseV1 {
  const base = { validHost: request.host, originalRequest: request };
  const notFound = (message: string): ResponseV1 =>
    create(ResponseV1Schema, {
      ...base,
      messageResponse: { case: "errorResponse", value: { errorCode: Code.NotFound, errorMessage: message } },
    });
  const files = (file: DescFile): ResponseV1 =>
    create(ResponseV1Schema, {
      ...base,
      messageResponse: {
        case: "fileDescriptorResponse",
        value: { fileDescriptorProto: withDependencies(file).map((f) => serialize(index, f)) },
      },
    });

  const req = request.messageRequest;
  switch (req.case) {
    case "listServices":
      return create(ResponseV1Schema, {
        ...base,
        messageResponse: {
          case: "listServicesResponse",
          value: { service: index.services.map((name) => ({ name })) },
        },
      });
    case "fileByFilename": {
      const file = index.filesByName.get(req.value);
      return file ? files(file) : notFound(`file "${req.value}" not found`);
    }
    case "fileContainingSymbol": {
      const file = index.fileBySymbol.get(stripDot(req.value));
      return file ? files(file) : notFound(`symbol "${req.value}" not found`);
    }
    case "fileContainingExtension": {
      const { containingType, extensionNumber } = req.value;
      const file = index.extensionsByExtendee.get(stripDot(containingType))?.get(extensionNumber);
      return file
        ? files(file)
        : notFound(`extension ${extensionNumber} of "${containingType}" not found`);
    }
    case "allExtensionNumbersOfType": {
      const typeName = stripDot(req.value);
      if (!index.fileBySymbol.has(typeName)) return notFound(`type "${typeName}" not found`);
      const numbers = [...(index.extensionsByExtendee.get(typeName)?.keys() ?? [])].sort((a, b) => a - b);
      return create(ResponseV1Schema, {
        ...base,
        messageResponse: {
          case: "allExtensionNumbersResponse",
          value: { baseTypeName: typeName, extensionNumber: numbers },
        },
      });
    }
    case undefined:
      return create(ResponseV1Schema, {
        ...base,
        messageResponse: {
          case: "errorResponse",
          value: { errorCode: Code.InvalidArgument, errorMessage: "empty message_request" },
        },
      });
  }
}

/** Some clients send the protobuf-internal form of a name, with a leading dot. */
function stripDot(name: string): string {
  return name.startsWith(".") ? name.slice(1) : name;
}

/** The file first (clients read it as the answer), then its transitive dependencies. */
function withDependencies(file: DescFile): DescFile[] {
  const out: DescFile[] = [];
  const seen = new Set<DescFile>();
  const visit = (f: DescFile): void => {
    if (seen.has(f)) return;
    seen.add(f);
    out.push(f);
    f.dependencies.forEach(visit);
  };
  visit(file);
  return out;
}

function serialize(index: ReflectionIndex, file: DescFile): Uint8Array {
  let bytes = index.serialized.get(file);
  if (bytes === undefined) {
    bytes = toBinary(FileDescriptorProtoSchema, file.proto);
    index.serialized.set(file, bytes);
  }
  return bytes;
}

/**
 * Connect does not end a handler's request stream when the server shuts down, only the handler
 * signal: stop reading when it aborts, so that an idle reflection stream cannot hold close() up.
 */
async function* untilAborted<T>(source: AsyncIterable<T>, context: HandlerContext): AsyncGenerator<T> {
  const { signal } = context;
  const it = source[Symbol.asyncIterator]();
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason);
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
  });
  // The race below may leave this promise rejected with nobody awaiting it.
  aborted.catch(() => undefined);
  try {
    for (;;) {
      const next = await Promise.race([it.next(), aborted]);
      if (next.done === true) return;
      yield next.value;
    }
  } finally {
    if (onAbort) signal.removeEventListener("abort", onAbort);
    // Do not await: the source may be blocked on a socket read that never completes.
    it.return?.().catch(() => undefined);
  }
}
