import type { HandlerContext } from "@connectrpc/connect";
import { type Principal, verifyApiKey } from "../db/credentials.js";
import type { Db } from "../db/database.js";
import { NgpuError } from "../errors.js";

export type Authenticate = (context: HandlerContext) => Promise<Principal>;

/**
 * Every public call carries `authorization: Bearer <api key>`. The key decides
 * the workspace and what may be done in it; nothing in a request can name
 * another workspace.
 */
export function createAuthenticator(db: Db): Authenticate {
  return async (context) => {
    const header = context.requestHeader.get("authorization") ?? "";
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match?.[1]) {
      throw new NgpuError("UNAUTHENTICATED", "missing API key: send the header 'authorization: Bearer <api key>'");
    }
    return verifyApiKey(db, match[1]);
  };
}

function denied(principal: Principal, what: string, needs: string): NgpuError {
  const scope = principal.scope === "INVOKE" ? `INVOKE key for ${principal.appNames.join(", ")}` : `${principal.scope} key`;
  return new NgpuError("PERMISSION_DENIED", `${what} needs ${needs}; this is a ${scope} (${principal.keyId})`);
}

/** Changes to the workspace itself (deploying apps, managing keys): FULL keys only. */
export function requireFull(principal: Principal, what: string): void {
  if (principal.scope !== "FULL") throw denied(principal, what, "a FULL key");
}

/** Network administration: a FULL key of the operator workspace. */
export function requireOperator(principal: Principal, what: string): void {
  if (!principal.operator) throw new NgpuError("PERMISSION_DENIED", `${what} needs an API key of the network's operator workspace`);
  requireFull(principal, what);
}

/**
 * Acting on one app's tasks: "invoke" (submit, cancel) needs FULL, or INVOKE
 * naming the app; "read" also allows READ_ONLY.
 */
export function requireApp(principal: Principal, appName: string, action: "invoke" | "read", what: string): void {
  switch (principal.scope) {
    case "FULL":
      return;
    case "READ_ONLY":
      if (action === "read") return;
      throw denied(principal, what, "a FULL key or an INVOKE key for this app");
    case "INVOKE":
      if (principal.appNames.includes(appName)) return;
      throw denied(principal, `${what} (app ${JSON.stringify(appName)})`, `a key for app ${JSON.stringify(appName)}`);
  }
}

/** Apps a list may show: undefined means all of the workspace's. */
export function visibleApps(principal: Principal): readonly string[] | undefined {
  return principal.scope === "INVOKE" ? principal.appNames : undefined;
}

/** Reading the workspace's own settings (webhooks, deliveries, usage): FULL or READ_ONLY keys. */
export function requireWorkspaceRead(principal: Principal, what: string): void {
  if (principal.scope === "INVOKE") throw denied(principal, what, "a FULL or READ_ONLY key");
}
