import { create } from "@bufbuild/protobuf";
import { RuntimeSchema, type Runtime } from "../../gen/ngpu/v1/app_pb.js";
import { createNgpuClient, type NgpuClient } from "../../sdk/index.js";

/** A runtime the worker runs itself (no app server): "echo" or "sleep". */
export function builtin(name: "echo" | "sleep"): Runtime {
  return create(RuntimeSchema, { kind: { case: "builtin", value: { name } } });
}

export function client(url: string, apiKey: string): NgpuClient {
  return createNgpuClient({ baseUrl: url, apiKey });
}
