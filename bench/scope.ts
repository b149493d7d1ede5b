// Cleanup that runs even when a part fails or the bench is interrupted: every
// resource a part creates (database, control plane, child process) registers
// its undo here, and undos run last-in first-out.

type Undo = () => Promise<void> | void;

const open = new Set<Scope>();
let signalsInstalled = false;

export class Scope {
  private readonly undos: Array<{ what: string; undo: Undo }> = [];
  private closed = false;

  constructor() {
    open.add(this);
    installSignalHandlers();
  }

  /** Registers an undo; returns the value given, for chaining. */
  defer<T>(what: string, undo: Undo, value?: T): T {
    this.undos.push({ what, undo });
    return value as T;
  }

  /** Runs every undo (each bounded to 15 s); failures are reported, not thrown. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    open.delete(this);
    while (this.undos.length > 0) {
      const { what, undo } = this.undos.pop()!;
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          Promise.resolve().then(undo),
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error("timed out after 15 s")), 15_000);
          }),
        ]);
      } catch (err) {
        process.stderr.write(`bench: cleanup "${what}" failed: ${(err as Error).message}\n`);
      } finally {
        clearTimeout(timer);
      }
    }
  }
}

function installSignalHandlers(): void {
  if (signalsInstalled) return;
  signalsInstalled = true;
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) process.exit(130);
    stopping = true;
    process.stderr.write(`\nbench: ${signal}: cleaning up (databases, children)…\n`);
    void Promise.allSettled([...open].map((s) => s.close())).then(() => process.exit(130));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` every intervalMs until it returns a value, or throws after timeoutMs. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined> | T | undefined, timeoutMs: number, intervalMs = 25): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/**
 * Wall-clock time in ms, as Date.now() reads it in every process (the workers stamp their
 * reports with Date.now()). Not performance.timeOrigin + performance.now(): that is fixed at
 * process start and drifts from Date.now() when the system clock is stepped, as it is on
 * this kind of VM (a 7 s skew was seen), which made latencies meaningless.
 */
export function wallMs(): number {
  return Date.now();
}
