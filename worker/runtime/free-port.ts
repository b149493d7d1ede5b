import { createServer } from "node:net";

/**
 * A TCP port that is free right now on `host`, found by letting the kernel pick one. Another
 * process may take it before the app binds it; the app then fails to start, which the runtime
 * reports as an exit during setup.
 */
export async function pickFreePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error("could not pick a free port"))));
    });
  });
}
