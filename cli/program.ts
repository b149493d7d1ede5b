import { Command, CommanderError } from "commander";
import { Code, ConnectError } from "../sdk/index.js";
import { println, type CliContext } from "./context.js";
import { CliError, ExitCode } from "./errors.js";
import { registerAppCommands } from "./commands/apps.js";
import { registerKeyCommands } from "./commands/keys.js";
import { registerLimitCommands } from "./commands/limits.js";
import { registerNodeCommands } from "./commands/nodes.js";
import { registerSubmitCommand } from "./commands/submit.js";
import { registerTaskCommands } from "./commands/tasks.js";
import { registerUsageCommands } from "./commands/usage.js";
import { registerWebhookCommands } from "./commands/webhooks.js";
import { untrustedCertificateCode } from "../worker/session/tls-options.js";

/** Version the CLI reports with --version. */
export const CLI_VERSION = "0.1.0";

/** The `ngpu` program with its global options and the client commands (apps, submit, tasks, nodes). */
export function buildProgram(ctx: CliContext): Command {
  const program = new Command("ngpu")
    .description("NGPU: an open GPU compute network. Deploy apps, run tasks on them, watch the GPUs.")
    .version(CLI_VERSION)
    .option("--url <url>", "control-plane URL (env NGPU_URL; default http://127.0.0.1:7700)")
    .option("--api-key <key>", "API key (env NGPU_API_KEY; default: from $NGPU_DATA_DIR/credentials.json)")
    .option("--json", "print machine-readable JSON (canonical protobuf JSON)")
    // Set before adding commands: subcommands inherit both.
    .exitOverride()
    .configureOutput({
      writeOut: (text) => ctx.stdout.write(text),
      writeErr: (text) => ctx.stderr.write(text),
    })
    .showHelpAfterError("(run with --help for usage)");
  registerAppCommands(program, ctx);
  registerSubmitCommand(program, ctx);
  registerTaskCommands(program, ctx);
  registerNodeCommands(program, ctx);
  registerUsageCommands(program, ctx);
  registerWebhookCommands(program, ctx);
  registerKeyCommands(program, ctx);
  registerLimitCommands(program, ctx);
  for (const command of program.commands) command.hook("preAction", () => ctx.handleInterrupts());
  return program;
}

/** "NotFound" → "not found" */
function codeText(code: Code): string {
  return (Code[code] ?? `code ${code}`).replace(/(?<=[a-z])([A-Z])/g, " $1").toLowerCase();
}

/**
 * True for an error the client raised before sending: Connect reports a request it cannot encode
 * (e.g. a number beyond its int32 field) as Internal, but the fault is in the input, not the server.
 */
function isLocalEncodingError(err: ConnectError): boolean {
  return err.code === Code.Internal && /^serialize (binary|JSON)\b/.test(err.rawMessage);
}

/** Prints an error the way users should read it and returns the exit code. */
export function reportError(ctx: CliContext, err: unknown): number {
  if (err instanceof CommanderError) {
    // Commander has printed its message (or the help) already.
    return err.exitCode === 0 ? ExitCode.OK : ExitCode.USAGE;
  }
  if (err instanceof CliError) {
    // An empty message: whatever failed has explained itself already (e.g. the worker's own usage text).
    if (err.message) println(ctx.stderr, `error: ${err.message}`);
    return err.exitCode;
  }
  if (ctx.signal.aborted) {
    println(ctx.stderr, "interrupted");
    return ExitCode.INTERRUPTED;
  }
  if (err instanceof ConnectError && isLocalEncodingError(err)) {
    println(ctx.stderr, `error: a value is out of range for the request: ${err.rawMessage.replace(/^serialize (binary|JSON): /, "")}`);
    return ExitCode.USAGE;
  }
  const certificate = untrustedCertificateCode(err);
  if (certificate !== undefined) {
    println(ctx.stderr, `error: the control plane's TLS certificate is not trusted (${certificate}): ${err instanceof ConnectError ? err.rawMessage : err instanceof Error ? err.message : String(err)}`);
    println(ctx.stderr, "hint: trust its CA with NODE_EXTRA_CA_CERTS=/path/to/ca.pem (set it in the environment before running ngpu)");
    return ExitCode.FAILED;
  }
  if (err instanceof ConnectError) {
    println(ctx.stderr, `error: ${codeText(err.code)}: ${err.rawMessage}`);
    if (err.code === Code.Unavailable) {
      println(ctx.stderr, `hint: is the control plane running at ${ctx.url ?? "the configured URL"}? (start a local network with: ngpu dev)`);
    } else if (err.code === Code.Unauthenticated) {
      println(ctx.stderr, "hint: the API key was refused; check --api-key, NGPU_API_KEY or the credentials file");
    }
    return ExitCode.FAILED;
  }
  println(ctx.stderr, `error: ${err instanceof Error ? err.message : String(err)}`);
  return ExitCode.FAILED;
}

/** Runs the program on `argv` (as process.argv) and returns the exit code; always closes the client. */
export async function runProgram(program: Command, ctx: CliContext, argv: readonly string[]): Promise<number> {
  try {
    await program.parseAsync([...argv]);
    return ExitCode.OK;
  } catch (err) {
    return reportError(ctx, err);
  } finally {
    await ctx.close();
  }
}
