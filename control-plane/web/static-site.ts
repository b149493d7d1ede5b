import { readFile } from "node:fs/promises";
import { extname, join, normalize, sep } from "node:path";
import type { RpcFallbackHandler } from "../api/rpc-server.js";

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".png": "image/png",
  ".svg": "image/svg+xml",
  ".map": "application/json",
};

/**
 * Serves a built single-page app from a folder for every path that is no RPC:
 * files by name, "/" as index.html. Files are read on each request (they are
 * small, and a rebuild shows without a restart). GET and HEAD only.
 */
export function createStaticSite(options: { dir: string }): RpcFallbackHandler {
  const root = normalize(options.dir);
  return (req, res) => {
    const method = req.method ?? "GET";
    if (method !== "GET" && method !== "HEAD") {
      // 404, not 405: an RPC this server lacks (POST) then reads as "unimplemented" to Connect clients.
      res.writeHead(404);
      res.end();
      return;
    }
    let path: string;
    try {
      path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    } catch {
      res.writeHead(400);
      res.end();
      return;
    }
    if (path === "/" || path === "") path = "/index.html";
    const file = normalize(join(root, path));
    const type = CONTENT_TYPES[extname(file)];
    if (!file.startsWith(root + sep) || !type) {
      res.writeHead(404);
      res.end();
      return;
    }
    readFile(file).then(
      (body) => {
        // no-cache: revalidate each time, so a new build is picked up; the files are small.
        res.writeHead(200, { "content-type": type, "content-length": String(body.length), "cache-control": "no-cache", "x-content-type-options": "nosniff" });
        if (method === "HEAD") res.end();
        else res.end(body);
      },
      () => {
        res.writeHead(404);
        res.end();
      },
    );
  };
}
