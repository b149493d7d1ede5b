import { pino, type Logger } from "pino";

export type { Logger };

/** The one structured logger. Messages are constant; data goes in fields. */
export function createLogger(options: { level?: string; name?: string; destination?: NodeJS.WritableStream } = {}): Logger {
  return pino(
    { level: options.level ?? "info", ...(options.name ? { name: options.name } : {}), base: null },
    options.destination ?? process.stderr,
  );
}
