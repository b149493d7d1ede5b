import type { Command } from "commander";

/**
 * Registers the commands that run parts of the network: `dev`, `control-plane` and
 * `worker`. PLACEHOLDER: the lead fills this in (it registers nothing yet). Those
 * commands need no API key; the client commands resolve theirs only when they run.
 */
export function registerServerCommands(program: Command): void {
  void program;
}
