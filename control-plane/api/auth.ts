import type { HandlerContext } from "@connectrpc/connect";
import { type Principal, verifyApiKey } from "../db/credentials.js";
import type { Db } from "../db/database.js";
import { NgpuError } from "../errors.js";

export type Authenticate = (context: HandlerContext) => Promise<Principal>;

/**
 * Every public call carries `authorization: Bearer <api key>`. The key decides
 * the workspace; nothing in a request can name another one.
 */
export function createAuthenticator(db: Db): Authenticate {
  return async (context) => {
    const header = context.requestHeader.get("authorization") ?? "";
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match?.[1]) {
      throw new NgpuError("UNAUTHENTICATED", "missing API key: send the header 'authorization: Bearer <api key>'");
    }
    const principal = await verifyApiKey(db, match[1]);
    if (!principal) throw new NgpuError("UNAUTHENTICATED", "invalid or revoked API key");
    return principal;
  };
}
