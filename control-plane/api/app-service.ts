import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { AppSchema, AppService, type DeployAppRequest, type Runtime } from "../../gen/ngpu/v1/app_pb.js";
import type { GpuRequirements } from "../../gen/ngpu/v1/gpu_pb.js";
import { type AppDefinition, deployApp, findApp, findCallableApp, listApps, setAppBilling } from "../db/apps.js";
import type { Db } from "../db/database.js";
import type { AppRow, RuntimeRow } from "../db/schema.js";
import { invalidArgument } from "../errors.js";
import { type Authenticate, requireApp, requireFull, visibleApps } from "./auth.js";
import { appToProto, poolPolicyToProto } from "./convert.js";
import type { InputSchemaValidator } from "./input-schema.js";
import { checkPoolPolicy } from "./pool-policy.js";
import {
  DEFAULT_MAX_ATTEMPTS,
  checkJson,
  checkMaxAttempts,
  checkPageSize,
  checkQueueTtlMs,
  checkTimeoutMs,
  decodePageToken,
  encodePageToken,
  requireString,
} from "./validate.js";

export interface AppServiceDeps {
  readonly db: Db;
  readonly authenticate: Authenticate;
  readonly inputSchemas: InputSchemaValidator;
}

const APP_NAME = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
/** Set by the worker for each instance; an app may not override them. */
const RESERVED_ENV = new Set(["PORT", "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES"]);
export const BUILTIN_APPS = ["echo", "sleep"] as const;
const MAX_GPUS = 16;
/** Highest per-call fee of a published app: 1 USD. */
const MAX_CALL_FEE_NANO_USD = 1_000_000_000n;
const MAX_GPU_MEMORY_BYTES = 2n ** 40n;

function checkRuntime(field: string, runtime: Runtime | undefined): RuntimeRow {
  const kind = runtime?.kind;
  switch (kind?.case) {
    case "process": {
      const command = kind.value.command;
      if (command.length === 0) throw invalidArgument(`${field}.process.command`, "is required (the program and its arguments)");
      if (command.length > 64) throw invalidArgument(`${field}.process.command`, "at most 64 arguments");
      command.forEach((arg, i) => {
        if (arg.length > 4096) throw invalidArgument(`${field}.process.command[${i}]`, "at most 4096 characters");
      });
      if (command[0] === "") throw invalidArgument(`${field}.process.command[0]`, "the program is empty");
      return { kind: "process", command: [...command], workingDir: kind.value.workingDir };
    }
    case "docker": {
      const image = requireString(`${field}.docker.image`, kind.value.image, 512);
      if (/\s/.test(image)) throw invalidArgument(`${field}.docker.image`, "must not contain spaces");
      if (kind.value.port > 65535) throw invalidArgument(`${field}.docker.port`, "must be a TCP port (1-65535), or 0 for 5000");
      return { kind: "docker", image, port: kind.value.port || 5000 };
    }
    case "builtin": {
      const name = kind.value.name;
      if (!(BUILTIN_APPS as readonly string[]).includes(name)) throw invalidArgument(`${field}.builtin.name`, `must be one of ${BUILTIN_APPS.join(", ")}`);
      return { kind: "builtin", name };
    }
    default:
      throw invalidArgument(field, "is required: one of process, docker or builtin");
  }
}

function checkGpu(field: string, gpu: GpuRequirements | undefined): Pick<AppDefinition, "gpuCount" | "gpuMinMemoryBytes" | "gpuModels"> {
  const count = gpu?.count ?? 0;
  if (count > MAX_GPUS) throw invalidArgument(`${field}.count`, `must be at most ${MAX_GPUS}`);
  const minMemory = gpu?.minMemoryBytes ?? 0n;
  if (minMemory > MAX_GPU_MEMORY_BYTES) throw invalidArgument(`${field}.min_memory_bytes`, "is larger than any GPU (limit 1 TiB)");
  if (count === 0 && (minMemory > 0n || (gpu?.allowedModels.length ?? 0) > 0)) {
    throw invalidArgument(`${field}.count`, "must be at least 1 when min_memory_bytes or allowed_models are set");
  }
  const models = (gpu?.allowedModels ?? []).map((m, i) => requireString(`${field}.allowed_models[${i}]`, m.trim(), 128));
  if (models.length > 32) throw invalidArgument(`${field}.allowed_models`, "at most 32 models");
  return { gpuCount: count, gpuMinMemoryBytes: Number(minMemory), gpuModels: models };
}

function checkEnv(field: string, env: Record<string, string>): Record<string, string> {
  const entries = Object.entries(env);
  if (entries.length > 64) throw invalidArgument(field, "at most 64 variables");
  for (const [k, v] of entries) {
    if (!ENV_NAME.test(k)) throw invalidArgument(`${field}[${JSON.stringify(k)}]`, "is not a valid variable name");
    if (RESERVED_ENV.has(k)) throw invalidArgument(`${field}[${JSON.stringify(k)}]`, "is set by the worker and cannot be overridden");
    if (v.length > 8192) throw invalidArgument(`${field}[${JSON.stringify(k)}]`, "values are at most 8192 characters");
  }
  return Object.fromEntries(entries.sort(([a], [b]) => a.localeCompare(b)));
}

export function createAppService(deps: AppServiceDeps): ServiceImpl<typeof AppService> {
  const { db, authenticate, inputSchemas } = deps;

  const definitionOf = (req: DeployAppRequest): AppDefinition => {
    const name = requireString("name", req.name, 63);
    if (!APP_NAME.test(name)) throw invalidArgument("name", "use lowercase letters, digits and dashes, starting and ending with a letter or digit");
    let inputSchema: Record<string, unknown> | undefined;
    if (req.inputSchema && Object.keys(req.inputSchema).length > 0) {
      inputSchema = checkJson("input_schema", req.inputSchema, 256 * 1024);
      inputSchemas.compile("input_schema", inputSchema);
    }
    if (req.description.length > 1000) throw invalidArgument("description", "at most 1000 characters");
    return {
      name,
      description: req.description,
      runtime: checkRuntime("runtime", req.runtime),
      ...checkGpu("gpu", req.gpu),
      env: checkEnv("env", req.env),
      inputSchema,
      timeoutMs: checkTimeoutMs("timeout_ms", req.timeoutMs),
      maxAttempts: checkMaxAttempts("max_attempts", req.maxAttempts) || DEFAULT_MAX_ATTEMPTS,
      queueTtlMs: checkQueueTtlMs("queue_ttl_ms", req.queueTtlMs),
      pool: req.pool ? checkPoolPolicy("pool", req.pool) : null,
    };
  };

  const fromRow = (row: AppRow): DeployAppRequest =>
    ({
      name: row.name,
      description: row.description,
      runtime: appToProto(row).runtime,
      gpu: appToProto(row).gpu,
      env: row.env,
      timeoutMs: BigInt(row.timeout_ms),
      maxAttempts: row.max_attempts,
      queueTtlMs: BigInt(row.queue_ttl_ms),
      ...(row.pool_policy ? { pool: poolPolicyToProto(row.pool_policy) } : {}),
      ...(row.input_schema_source === "user" && row.input_schema ? { inputSchema: row.input_schema } : {}),
    }) as DeployAppRequest;

  return {
    async deployApp(req, ctx) {
      const principal = await authenticate(ctx);
      requireFull(principal, "deploying an app");
      const { app, created } = await deployApp(db, principal.workspaceId, definitionOf(req));
      return { app: appToProto(app), created };
    },

    async updateApp(req, ctx) {
      const principal = await authenticate(ctx);
      requireFull(principal, "updating an app");
      const current = await findApp(db, principal.workspaceId, requireString("app", req.app, 128));
      if (req.pool && req.removePool) throw invalidArgument("remove_pool", "cannot be set together with pool");
      const base = fromRow(current);
      const merged = {
        ...base,
        ...(req.runtime ? { runtime: req.runtime } : {}),
        ...(req.gpu ? { gpu: req.gpu } : {}),
        env: req.replaceEnv ? req.env : { ...base.env, ...req.env },
        ...(req.timeoutMs !== undefined ? { timeoutMs: req.timeoutMs } : {}),
        ...(req.description !== undefined ? { description: req.description } : {}),
        ...(req.maxAttempts !== undefined ? { maxAttempts: req.maxAttempts } : {}),
        ...(req.queueTtlMs !== undefined ? { queueTtlMs: req.queueTtlMs } : {}),
        pool: req.removePool ? undefined : (req.pool ?? base.pool),
      } as DeployAppRequest;
      const fee = req.callFeeNanoUsd;
      if (fee !== undefined && (fee < 0n || fee > MAX_CALL_FEE_NANO_USD)) throw invalidArgument("call_fee_nano_usd", `must be between 0 and ${MAX_CALL_FEE_NANO_USD} (1 USD)`);
      const { app } = await deployApp(db, principal.workspaceId, definitionOf(merged));
      // Publishing and fees are not part of the definition: they change no version.
      if (req.public === undefined && fee === undefined) return { app: appToProto(app) };
      const billed = await setAppBilling(db, app.id, { ...(req.public !== undefined ? { public: req.public } : {}), ...(fee !== undefined ? { callFeeNanoUsd: Number(fee) } : {}) });
      return { app: appToProto(billed) };
    },

    async getApp(req, ctx) {
      const principal = await authenticate(ctx);
      // The workspace's own app, or a published one of any workspace (by id or "<workspace>/<name>").
      const app = await findCallableApp(db, principal.workspaceId, requireString("app", req.app, 200));
      requireApp(principal, app, "read", "reading an app");
      if (app.workspace_id === principal.workspaceId) return { app: appToProto(app) };
      // A caller's view: what calling it needs (input schema, GPUs, timeout, fee), none of the
      // author's configuration (environment, runtime command or image, pool).
      const view = appToProto(app);
      view.env = {};
      view.runtime = undefined;
      view.pool = undefined;
      return { app: view };
    },

    async listApps(req, ctx) {
      const principal = await authenticate(ctx);
      const limit = checkPageSize("page_size", req.pageSize, 50);
      const cursor = decodePageToken("page_token", req.pageToken, "n", "string");
      const rows = await listApps(db, principal.workspaceId, limit + 1, cursor ? String(cursor.n) : undefined, visibleApps(principal));
      const page = rows.slice(0, limit);
      const last = page[page.length - 1];
      // A WIDGET key (on a public page) learns only its apps' names, for chart legends.
      const toProto = principal.scope === "WIDGET" ? (a: AppRow) => create(AppSchema, { id: a.id, workspaceId: a.workspace_id, name: a.name }) : appToProto;
      return { apps: page.map(toProto), nextPageToken: rows.length > limit && last ? encodePageToken({ n: last.name }) : "" };
    },
  };
}
