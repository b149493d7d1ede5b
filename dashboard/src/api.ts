// The public API from the browser, through Connect-Web: the same services the SDK and CLI call.
import { type Client, Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { AppService } from "../../gen/ngpu/v1/app_pb.js";
import { NodeService } from "../../gen/ngpu/v1/node_pb.js";
import { PoolService } from "../../gen/ngpu/v1/pool_pb.js";
import { TaskService } from "../../gen/ngpu/v1/task_pb.js";
import { TelemetryService } from "../../gen/ngpu/v1/telemetry_pb.js";
import { UsageService } from "../../gen/ngpu/v1/usage_pb.js";
import { WebhookService } from "../../gen/ngpu/v1/webhook_pb.js";

export interface Api {
  readonly baseUrl: string;
  readonly tasks: Client<typeof TaskService>;
  readonly apps: Client<typeof AppService>;
  readonly nodes: Client<typeof NodeService>;
  readonly pools: Client<typeof PoolService>;
  readonly telemetry: Client<typeof TelemetryService>;
  readonly usage: Client<typeof UsageService>;
  readonly webhooks: Client<typeof WebhookService>;
}

/**
 * Clients of every service at `baseUrl`, each call carrying the key or token.
 * `onRefused` hears of every call the server refused the key for (expired, revoked).
 */
export function createApi(baseUrl: string, token: string, onRefused?: () => void): Api {
  const auth: Interceptor = (next) => async (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    try {
      return await next(req);
    } catch (err) {
      if (onRefused && err instanceof ConnectError && err.code === Code.Unauthenticated) onRefused();
      throw err;
    }
  };
  // Binary protobuf: smaller than JSON, and the server speaks both.
  const transport = createConnectTransport({ baseUrl, useBinaryFormat: true, interceptors: [auth] });
  return {
    baseUrl,
    tasks: createClient(TaskService, transport),
    apps: createClient(AppService, transport),
    nodes: createClient(NodeService, transport),
    pools: createClient(PoolService, transport),
    telemetry: createClient(TelemetryService, transport),
    usage: createClient(UsageService, transport),
    webhooks: createClient(WebhookService, transport),
  };
}
