import type { DescMessage, DescService, MessageShape } from "@bufbuild/protobuf";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";

/**
 * A grpc-js client (the reference gRPC implementation) for a protobuf-es
 * service, with protobuf-es doing the (de)serialization: no proto-loader.
 */
export function grpcDefinition(service: DescService): grpc.ServiceDefinition {
  const definition: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const method of service.methods) {
    definition[method.name] = {
      path: `/${service.typeName}/${method.name}`,
      requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
      responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
      requestSerialize: (m: unknown) => Buffer.from(toBinary(method.input, m as MessageShape<DescMessage>)),
      requestDeserialize: (b: Buffer) => fromBinary(method.input, b),
      responseSerialize: (m: unknown) => Buffer.from(toBinary(method.output, m as MessageShape<DescMessage>)),
      responseDeserialize: (b: Buffer) => fromBinary(method.output, b),
      originalName: method.localName,
    };
  }
  return definition;
}

export function grpcJsClient(service: DescService, url: string): grpc.Client {
  const Ctor = grpc.makeGenericClientConstructor(grpcDefinition(service), service.name);
  return new Ctor(url.replace(/^https?:\/\//, ""), grpc.credentials.createInsecure());
}

/** One unary call; metadata carries headers such as authorization. */
export function unary<Res>(client: grpc.Client, method: string, request: unknown, metadata = new grpc.Metadata()): Promise<Res> {
  const fn = (client as unknown as Record<string, (...args: unknown[]) => unknown>)[method];
  if (fn === undefined) throw new Error(`no method ${method}`);
  return new Promise<Res>((resolve, reject) => {
    fn.call(client, request, metadata, (error: grpc.ServiceError | null, response: Res) => (error ? reject(error) : resolve(response)));
  });
}
