import { create } from "@bufbuild/protobuf";
import { type Timestamp, timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { type ApiKey, ApiKeySchema, KeyScope, KeyService } from "../../gen/ngpu/v1/key_pb.js";
import { type ApiKeyRow, createApiKey, createEnrollmentToken, type KeyScope as ScopeName, listApiKeys, revokeApiKey } from "../db/credentials.js";
import { findCallableApp } from "../db/apps.js";
import type { Db } from "../db/database.js";
import { invalidArgument, NgpuError, notFound } from "../errors.js";
import { type Authenticate, requireFull, requireOperator } from "./auth.js";
import { checkText, requireString } from "./validate.js";

export interface KeyServiceDeps {
  readonly db: Db;
  readonly authenticate: Authenticate;
}

const SCOPES: Partial<Record<KeyScope, ScopeName>> = {
  [KeyScope.FULL]: "FULL",
  [KeyScope.INVOKE]: "INVOKE",
  [KeyScope.READ_ONLY]: "READ_ONLY",
  [KeyScope.WIDGET]: "WIDGET",
};
/** The latest expiry a key or token may have: ten years. */
const MAX_EXPIRY_MS = 10 * 365 * 24 * 3600 * 1000;

export function apiKeyToProto(row: ApiKeyRow): ApiKey {
  const ts = (d: Date | null) => (d ? timestampFromDate(d) : undefined);
  return create(ApiKeySchema, {
    id: row.id,
    name: row.name,
    scope: KeyScope[row.scope as keyof typeof KeyScope] ?? KeyScope.UNSPECIFIED,
    apps: row.app_names,
    appIds: row.app_ids,
    createTime: timestampFromDate(row.created_at),
    expireTime: ts(row.expires_at),
    lastUsedTime: ts(row.last_used_at),
    revokeTime: ts(row.revoked_at),
  });
}

/** An optional expiry from a request: in the future, at most ten years away. */
function checkExpiry(field: string, value: Timestamp | undefined): Date | undefined {
  if (!value) return undefined;
  if (value.nanos < 0 || value.nanos > 999_999_999) throw invalidArgument(field, "nanos must be 0..999999999");
  const ms = Number(value.seconds) * 1000;
  if (!Number.isSafeInteger(ms) || ms <= Date.now()) throw invalidArgument(field, "must be in the future");
  if (ms > Date.now() + MAX_EXPIRY_MS) throw invalidArgument(field, "must be at most ten years away");
  return timestampDate(value);
}

/**
 * The apps a key names, resolved to ids now so that a later app of the same
 * name elsewhere never matches: a bare name is the workspace's own app; another
 * workspace's published app must be named as "<workspace>/<app>" or by its id.
 * Each is labelled for people as the workspace's own name, or "<workspace id>/<name>".
 */
async function resolveApps(db: Db, workspaceId: string, refs: readonly string[]): Promise<{ id: string; label: string }[]> {
  const resolved = new Map<string, string>();
  for (const [i, ref] of refs.entries()) {
    const field = `apps[${i}]`;
    const app = await findCallableApp(db, workspaceId, requireString(field, ref, 200)).catch((err: unknown) => {
      if (err instanceof NgpuError && err.code === "NOT_FOUND") throw new NgpuError("NOT_FOUND", `${field}: app ${JSON.stringify(ref)} not found (name one of your apps, or a published app as "<workspace>/<app>")`);
      if (err instanceof NgpuError) throw new NgpuError(err.code, `${field}: ${err.message}`);
      throw err;
    });
    resolved.set(app.id, app.workspace_id === workspaceId ? app.name : `${app.workspace_id}/${app.name}`);
  }
  return [...resolved].map(([id, label]) => ({ id, label }));
}

export function createKeyService(deps: KeyServiceDeps): ServiceImpl<typeof KeyService> {
  const { db, authenticate } = deps;
  return {
    async createKey(req, ctx) {
      const principal = await authenticate(ctx);
      requireFull(principal, "creating an API key");
      if (req.name.length > 128) throw invalidArgument("name", "must be at most 128 characters");
      const name = checkText("name", req.name);
      const scope = SCOPES[req.scope];
      if (!scope) throw invalidArgument("scope", "is required: KEY_SCOPE_FULL, KEY_SCOPE_INVOKE, KEY_SCOPE_READ_ONLY or KEY_SCOPE_WIDGET");
      const namesApps = scope === "INVOKE" || scope === "WIDGET";
      if (namesApps && req.apps.length === 0) throw invalidArgument("apps", `${scope} keys need at least one app`);
      if (!namesApps && req.apps.length > 0) throw invalidArgument("apps", "only INVOKE and WIDGET keys name apps");
      if (req.apps.length > 64) throw invalidArgument("apps", "at most 64 apps");
      const expiresAt = checkExpiry("expire_time", req.expireTime);
      const apps = await resolveApps(db, principal.workspaceId, req.apps);
      const { key, row } = await createApiKey(db, principal.workspaceId, {
        name,
        scope,
        appNames: apps.map((a) => a.label),
        appIds: apps.map((a) => a.id),
        ...(expiresAt ? { expiresAt } : {}),
      });
      return { key: apiKeyToProto(row), secret: key };
    },

    async listKeys(req, ctx) {
      const principal = await authenticate(ctx);
      requireFull(principal, "listing API keys");
      return { keys: (await listApiKeys(db, principal.workspaceId, req.includeInactive)).map(apiKeyToProto) };
    },

    async revokeKey(req, ctx) {
      const principal = await authenticate(ctx);
      requireFull(principal, "revoking an API key");
      const id = requireString("key_id", req.keyId, 64);
      const row = await revokeApiKey(db, principal.workspaceId, id);
      if (!row) throw notFound("API key", id);
      return { key: apiKeyToProto(row) };
    },

    async createEnrollmentToken(req, ctx) {
      const principal = await authenticate(ctx);
      requireOperator(principal, "creating an enrollment token");
      if (req.name.length > 128) throw invalidArgument("name", "must be at most 128 characters");
      const name = checkText("name", req.name);
      if (req.maxUses > 10_000) throw invalidArgument("max_uses", "must be at most 10000");
      const expiresAt = checkExpiry("expire_time", req.expireTime);
      const token = await createEnrollmentToken(db, { name, maxUses: req.maxUses || 1, ...(expiresAt ? { expiresAt } : {}) });
      return { tokenId: token.id, token: token.token, expireTime: expiresAt ? timestampFromDate(expiresAt) : undefined };
    },
  };
}
