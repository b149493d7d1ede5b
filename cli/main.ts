// The `ngpu` command: the composition root of the CLI. It wires the process (streams,
// signals, exit code) to the program; everything else is in the modules it imports.
import { createCliContext } from "./context.js";
import { buildProgram, runProgram } from "./program.js";
import { registerServerCommands } from "./commands/server-commands.js";

const ctx = createCliContext({
  stdout: process.stdout,
  stderr: process.stderr,
  onInterrupt: (handler) => process.on("SIGINT", handler),
  exitNow: (code) => process.exit(code),
});
const program = buildProgram(ctx);

// ── Server commands (`dev`, `control-plane`, `worker`) ─────────────────────────
// The lead registers them in ./commands/server-commands.ts. They need no API key
// and install their own signal handling.
registerServerCommands(program);
// ───────────────────────────────────────────────────────────────────────────────

process.exitCode = await runProgram(program, ctx, process.argv);
