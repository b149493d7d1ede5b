import { create } from "@bufbuild/protobuf";
import { type Timestamp, timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { type ApiKey, ApiKeySchema, KeyScope, KeyService } from "../../gen/ngpu/v1/key_pb.js";
import { type ApiKeyRow, createApiKey, createEnrollmentToken, type KeyScope as ScopeName, listApiKeys, revokeApiKey } from "../db/credentials.js";
import type { Db } from "../db/database.js";
import { invalidArgument, notFound } from "../errors.js";
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
};
const APP_NAME = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
/** The latest expiry a key or token may have: ten years. */
const MAX_EXPIRY_MS = 10 * 365 * 24 * 3600 * 1000;

export function apiKeyToProto(row: ApiKeyRow): ApiKey {
  const ts = (d: Date | null) => (d ? timestampFromDate(d) : undefined);
  return create(ApiKeySchema, {
    id: row.id,
    name: row.name,
    scope: KeyScope[row.scope as keyof typeof KeyScope] ?? KeyScope.UNSPECIFIED,
    apps: row.app_names,
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

export function createKeyService(deps: KeyServiceDeps): ServiceImpl<typeof KeyService> {
  const { db, authenticate } = deps;
  return {
    async createKey(req, ctx) {
      const principal = await authenticate(ctx);
      requireFull(principal, "creating an API key");
      if (req.name.length > 128) throw invalidArgument("name", "must be at most 128 characters");
      const name = checkText("name", req.name);
      const scope = SCOPES[req.scope];
      if (!scope) throw invalidArgument("scope", "is required: KEY_SCOPE_FULL, KEY_SCOPE_INVOKE or KEY_SCOPE_READ_ONLY");
      if (scope === "INVOKE" && req.apps.length === 0) throw invalidArgument("apps", "an INVOKE key needs at least one app name");
      if (scope !== "INVOKE" && req.apps.length > 0) throw invalidArgument("apps", "only an INVOKE key names apps");
      if (req.apps.length > 64) throw invalidArgument("apps", "at most 64 apps");
      const apps = req.apps.map((a, i) => {
        const n = requireString(`apps[${i}]`, a, 63);
        if (!APP_NAME.test(n)) throw invalidArgument(`apps[${i}]`, "is not an app name (lowercase letters, digits and dashes)");
        return n;
      });
      const expiresAt = checkExpiry("expire_time", req.expireTime);
      const { key, row } = await createApiKey(db, principal.workspaceId, { name, scope, appNames: [...new Set(apps)], ...(expiresAt ? { expiresAt } : {}) });
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
