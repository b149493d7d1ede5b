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
  const scope = principal.appNames.length > 0 ? `${principal.scope} key for ${principal.appNames.join(", ")}` : `${principal.scope} key`;
  return new NgpuError("PERMISSION_DENIED", `${what} needs ${needs}; this key (${principal.keyId}) is a${/^[AEIOU]/.test(scope) ? "n" : ""} ${scope}`);
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
 * naming the app; "read" also allows READ_ONLY; "view" (one task's state and
 * progress, without its input and output) also allows WIDGET naming the app.
 * Apps are matched by id, so a key never reaches another workspace's app of the
 * same name unless it was created naming that app.
 */
export function requireApp(principal: Principal, app: { id: string; name: string }, action: "invoke" | "read" | "view", what: string): void {
  switch (principal.scope) {
    case "FULL":
      return;
    case "READ_ONLY":
      if (action !== "invoke") return;
      throw denied(principal, what, "a FULL key or an INVOKE key for this app");
    case "INVOKE":
      if (principal.appIds.includes(app.id)) return;
      throw denied(principal, `${what} (app ${JSON.stringify(app.name)})`, `a key for app ${JSON.stringify(app.name)}`);
    case "WIDGET":
      if (action === "view" && principal.appIds.includes(app.id)) return;
      throw denied(principal, `${what} (app ${JSON.stringify(app.name)})`, action === "view" ? `a key for app ${JSON.stringify(app.name)}` : "a FULL, READ_ONLY or INVOKE key");
  }
}

/** Apps a list may show, by id: undefined means all of the workspace's. */
export function visibleApps(principal: Principal): readonly string[] | undefined {
  return principal.scope === "INVOKE" || principal.scope === "WIDGET" ? principal.appIds : undefined;
}

/** Reading the workspace's own settings (webhooks, deliveries, receipts, task lists): FULL or READ_ONLY keys. */
export function requireWorkspaceRead(principal: Principal, what: string): void {
  if (principal.scope === "INVOKE" || principal.scope === "WIDGET") throw denied(principal, what, "a FULL or READ_ONLY key");
}

/**
 * Reading the usage summary: FULL and READ_ONLY keys see all of it; a WIDGET
 * key only its apps' usage as a caller (returned: the app ids to restrict to).
 */
export function usageApps(principal: Principal, what: string): readonly string[] | undefined {
  if (principal.scope === "WIDGET") return principal.appIds;
  requireWorkspaceRead(principal, what);
  return undefined;
}

/** Calls open to any key of the workspace except WIDGET keys (which sit in public web pages). */
export function requireNotWidget(principal: Principal, what: string): void {
  if (principal.scope === "WIDGET") throw denied(principal, what, "a FULL, READ_ONLY or INVOKE key");
}
