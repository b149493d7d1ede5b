// Child processes of the bench (worker processes, the telemetry load generator):
// forked with tsx, talking JSON over IPC, stopped and killed by their own pid.
import { type ChildProcess, fork } from "node:child_process";
import { join } from "node:path";
import type { Scope } from "./scope.js";

export interface Child<In, Out> {
  readonly pid: number;
  readonly process: ChildProcess;
  send(message: In): void;
  /** Resolves with the first message (from now on, or already buffered) that matches. */
  next<T extends Out>(match: (m: Out) => m is T, timeoutMs: number, what: string): Promise<T>;
  /** Every message received so far. */
  readonly messages: Out[];
  /** Lines the child wrote on stderr (count, first few). */
  readonly stderr: { count: number; first: string[] };
  /** Waits up to timeoutMs for the child to exit by itself, then kills it (SIGKILL). */
  stopped(timeoutMs: number): Promise<void>;
}

let forked = 0;

/** Forks bench/<file> with tsx; the scope kills it if it is still alive at cleanup. */
export function forkChild<In, Out>(scope: Scope, file: string, args: readonly string[], env: Record<string, string> = {}): Child<In, Out> {
  // NGPU_BENCH_CPU_PROF_DIR=DIR writes a V8 CPU profile of every child (open it in Chrome DevTools).
  const profDir = process.env.NGPU_BENCH_CPU_PROF_DIR;
  const profArgs = profDir ? ["--cpu-prof", `--cpu-prof-dir=${join(profDir, `${file.replace(/\.ts$/, "")}-${++forked}`)}`] : [];
  const child = fork(join(import.meta.dirname, file), [...args], {
    execArgv: ["--import", "tsx", ...profArgs],
    stdio: ["ignore", "inherit", "pipe", "ipc"],
    env: { ...process.env, ...env },
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start ${file}`);
  const messages: Out[] = [];
  const waiters = new Set<(m: Out) => void>();
  const stderr = { count: 0, first: [] as string[] };
  let exited = child.exitCode !== null;
  const exitWaiters = new Set<() => void>();
  child.on("message", (m) => {
    messages.push(m as Out);
    for (const w of [...waiters]) w(m as Out);
  });
  child.on("exit", () => {
    exited = true;
    for (const w of [...exitWaiters]) w();
  });
  let partial = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    const lines = (partial + chunk.toString("utf8")).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) {
      if (!line.trim()) continue;
      stderr.count++;
      if (stderr.first.length < 5) stderr.first.push(line.slice(0, 400));
    }
  });

  const stopped = async (timeoutMs: number) => {
    if (!exited) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          exitWaiters.delete(done);
          resolve();
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          resolve();
        };
        exitWaiters.add(done);
      });
    }
    if (!exited) {
      child.kill("SIGKILL");
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 2_000);
        exitWaiters.add(() => (clearTimeout(timer), resolve()));
      });
    }
  };
  scope.defer(`child ${file} (pid ${pid})`, () => stopped(0));

  return {
    pid,
    process: child,
    messages,
    stderr,
    send(message) {
      if (child.connected) child.send(message as object);
    },
    next<T extends Out>(match: (m: Out) => m is T, timeoutMs: number, what: string): Promise<T> {
      const found = messages.find(match);
      if (found) {
        messages.splice(messages.indexOf(found), 1);
        return Promise.resolve(found);
      }
      return new Promise<T>((resolve, reject) => {
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(onMessage);
          exitWaiters.delete(onExit);
        };
        const onMessage = (m: Out) => {
          if (!match(m)) return;
          messages.splice(messages.indexOf(m), 1);
          cleanup();
          resolve(m);
        };
        const onExit = () => {
          cleanup();
          reject(new Error(`${file} exited while the bench waited for ${what}${stderr.first.length ? `; its stderr: ${stderr.first.join(" | ")}` : ""}`));
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what} from ${file}`));
        }, timeoutMs);
        waiters.add(onMessage);
        if (exited) onExit();
        else exitWaiters.add(onExit);
      });
    },
    stopped,
  };
}
