import type http from "node:http";
import type http2 from "node:http2";
import { cors } from "@connectrpc/connect";

type Request = http.IncomingMessage | http2.Http2ServerRequest;
type Response = http.ServerResponse | http2.Http2ServerResponse;

const ALLOW_METHODS = cors.allowedMethods.join(", ");
// Connect's own headers, plus the API key.
const ALLOW_HEADERS = [...cors.allowedHeaders, "Authorization"].join(", ");
const EXPOSE_HEADERS = cors.exposedHeaders.join(", ");
/** How long a browser may reuse a preflight answer, in seconds. */
const PREFLIGHT_MAX_AGE_S = 7200;

/**
 * Lets pages on any origin call the API from a browser (embedded widgets,
 * Connect-Web apps). Any origin is safe here: the API authenticates with a
 * bearer key that a page must already hold, never with cookies, so a foreign
 * page gains nothing it could not do with the key anyway.
 * Returns true when it answered the request itself (a preflight).
 */
export function applyCors(req: Request, res: Response): boolean {
  const origin = req.headers.origin;
  if (typeof origin !== "string" || origin === "") return false;
  res.setHeader("Access-Control-Allow-Origin", "*");
  res.setHeader("Vary", "Origin");
  if (req.method === "OPTIONS" && req.headers["access-control-request-method"]) {
    res.setHeader("Access-Control-Allow-Methods", ALLOW_METHODS);
    res.setHeader("Access-Control-Allow-Headers", ALLOW_HEADERS);
    res.setHeader("Access-Control-Max-Age", String(PREFLIGHT_MAX_AGE_S));
    res.writeHead(204);
    res.end();
    return true;
  }
  res.setHeader("Access-Control-Expose-Headers", EXPOSE_HEADERS);
  return false;
}
