import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { createConnection } from "node:net";
import { delimiter, join } from "node:path";
import { pickFreePort } from "../../worker/runtime/free-port.js";

export interface LocalNatsServer {
  readonly url: string;
  stop(): Promise<void>;
}

/** nats-server from NGPU_NATS_SERVER, PATH, or where Debian puts it. */
export function findNatsServer(env: Readonly<Record<string, string | undefined>>): string | undefined {
  if (env.NGPU_NATS_SERVER) return env.NGPU_NATS_SERVER;
  const dirs = [...(env.PATH ?? "").split(delimiter), "/usr/sbin", "/usr/local/sbin", "/usr/local/bin"];
  return dirs.map((d) => join(d, "nats-server")).find((p) => existsSync(p));
}


function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ port, host: "127.0.0.1" });
    socket.once("connect", () => (socket.destroy(), resolve(true)));
    socket.once("error", () => resolve(false));
  });
}

/**
 * Starts a private nats-server with JetStream on a loopback port (a free one
 * unless given), its store under dataDir; stop() ends it.
 */
export async function startLocalNatsServer(binary: string, dataDir: string, fixedPort?: number): Promise<LocalNatsServer> {
  mkdirSync(dataDir, { recursive: true });
  const port = fixedPort ?? (await pickFreePort());
  const child: ChildProcess = spawn(binary, ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", dataDir], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  child.once("error", () => {});
  const deadline = Date.now() + 10_000;
  while (!(await accepts(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`nats-server (${binary}) did not start: ${stderr.trim() || `exit code ${child.exitCode}`}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url: `nats://127.0.0.1:${port}`,
    async stop() {
      if (child.exitCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
