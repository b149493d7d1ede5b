import { pino, type Logger } from "pino";

export type { Logger };

/** The worker's structured logger (JSON lines on stderr). Messages are constant; data goes in fields. */
export function createLogger(level = "info"): Logger {
  return pino({ level, base: null, name: "ngpu-worker" }, process.stderr);
}
