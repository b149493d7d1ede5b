import type { Command } from "commander";
import { toJson, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { createNgpuClient, type NgpuClient } from "../sdk/index.js";
import { resolveClientConfig, type ClientConfig } from "./config.js";

/** Options every command accepts (declared on the program). */
export interface GlobalOptions {
  /** Control-plane URL. */
  readonly url?: string;
  /** API key. */
  readonly apiKey?: string;
  /** Print machine-readable JSON instead of text. */
  readonly json?: boolean;
}

/** A stream the CLI writes to (process.stdout, process.stderr). */
export type OutputStream = NodeJS.WritableStream & { readonly isTTY?: boolean };

/** What the client commands get from the composition root (main.ts). */
export interface CliContext {
  /** Results: text, or JSON with --json. */
  readonly stdout: OutputStream;
  /** Progress, notes and errors. */
  readonly stderr: OutputStream;
  /** Aborted on the first Ctrl-C once `handleInterrupts` ran: commands that wait or refresh stop and clean up. */
  readonly signal: AbortSignal;
  /**
   * Makes Ctrl-C abort `signal` (a second Ctrl-C exits at once). Client commands call
   * it before they run; server commands keep their own signal handling.
   */
  handleInterrupts(): void;
  /** The client for this run, created on first use from the global flags and the environment. */
  client(command: Command): NgpuClient;
  /** The configuration the client uses (resolving it if needed). */
  config(command: Command): ClientConfig;
  /** The URL of the client, once one was created (for error hints). */
  readonly url: string | undefined;
  /** Closes the client if one was created. */
  close(): Promise<void>;
}

export function globalOptions(command: Command): GlobalOptions {
  return command.optsWithGlobals<GlobalOptions>();
}

export function wantsJson(command: Command): boolean {
  return globalOptions(command).json === true;
}

export interface CliContextOptions {
  readonly stdout: OutputStream;
  readonly stderr: OutputStream;
  /** Installs the Ctrl-C handler; it gets the callback to run on each interrupt. */
  readonly onInterrupt: (handler: () => void) => void;
  /** Exits the process at once (second Ctrl-C). */
  readonly exitNow: (code: number) => void;
}

export function createCliContext(options: CliContextOptions): CliContext {
  const interrupt = new AbortController();
  let handling = false;
  let config: ClientConfig | undefined;
  let client: NgpuClient | undefined;
  const ctx: CliContext = {
    stdout: options.stdout,
    stderr: options.stderr,
    signal: interrupt.signal,
    handleInterrupts() {
      if (handling) return;
      handling = true;
      options.onInterrupt(() => {
        if (interrupt.signal.aborted) options.exitNow(130);
        else interrupt.abort();
      });
    },
    config(command) {
      const { url, apiKey } = globalOptions(command);
      config ??= resolveClientConfig({ url, apiKey });
      return config;
    },
    client(command) {
      const { url, apiKey } = ctx.config(command);
      client ??= createNgpuClient({ baseUrl: url, apiKey });
      return client;
    },
    get url() {
      return client === undefined ? undefined : config?.url;
    },
    async close() {
      await client?.close();
    },
  };
  return ctx;
}

/** Writes a line to a stream. */
export function println(stream: OutputStream, text = ""): void {
  stream.write(`${text}\n`);
}

/** A message in canonical protobuf JSON (zero values included, so scripts see every field). */
export function messageJson<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>): unknown {
  return toJson(schema, message, { alwaysEmitImplicit: true });
}

/** Prints a JSON value, indented, to stdout. */
export function printJson(ctx: CliContext, value: unknown): void {
  println(ctx.stdout, JSON.stringify(value, null, 2));
}
