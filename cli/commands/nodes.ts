import { setTimeout as sleep } from "node:timers/promises";
import type { Command } from "commander";
import { NodeSchema, type Node } from "../../sdk/index.js";
import { messageJson, println, printJson, wantsJson, type CliContext } from "../context.js";
import { parseDuration, UINT32_MAX } from "../parse.js";
import { renderNode, renderNodeTable } from "../render.js";

/** Refresh period of `nodes list --watch`, in ms. */
export const WATCH_INTERVAL_MS = 1_000;

/** Clears a terminal and moves the cursor home, so each refresh replaces the last. */
const CLEAR_SCREEN = "\x1b[2J\x1b[H";

export function registerNodeCommands(program: Command, ctx: CliContext): void {
  const nodes = program.command("nodes").description("GPU nodes of the network and their live telemetry");

  nodes
    .command("list")
    .description("list nodes: GPUs, utilisation, VRAM, temperature, power, running tasks")
    .option("--all", "include nodes that are offline or lost")
    .option("--watch", `refresh every ${WATCH_INTERVAL_MS / 1000} s until Ctrl-C`)
    .action(async (flags: { all?: boolean; watch?: boolean }, command: Command) => {
      const client = ctx.client(command);
      const json = wantsJson(command);
      const tty = ctx.stdout.isTTY === true;
      for (;;) {
        const found: Node[] = [];
        try {
          for await (const node of client.nodes.listAll({ includeOffline: flags.all === true }, { signal: ctx.signal })) found.push(node);
        } catch (err) {
          if (flags.watch && ctx.signal.aborted) return; // Ctrl-C: the way to stop watching, so not an error
          throw err;
        }
        if (json) {
          const value = { nodes: found.map((n) => messageJson(NodeSchema, n)) };
          // --watch --json streams one compact JSON document per line.
          if (flags.watch) println(ctx.stdout, JSON.stringify(value));
          else printJson(ctx, value);
        } else {
          const table = found.length === 0 ? "no nodes" : renderNodeTable(found);
          if (flags.watch && tty) ctx.stdout.write(`${CLEAR_SCREEN}${new Date().toLocaleTimeString()}  (Ctrl-C to stop)\n\n${table}\n`);
          else println(ctx.stdout, flags.watch ? `${table}\n` : table);
        }
        if (!flags.watch) return;
        try {
          await sleep(WATCH_INTERVAL_MS, undefined, { signal: ctx.signal });
        } catch {
          return; // Ctrl-C: the way to stop watching, so not an error
        }
      }
    });

  nodes
    .command("drain")
    .description("stop giving a node work: running tasks may finish within the grace period, the rest run elsewhere (operators only)")
    .argument("<id>", "node id")
    .option("--grace <duration>", "how long running tasks may take to finish", "30s")
    .action(async (id: string, flags: { grace: string }, command: Command) => {
      const graceMs = parseDuration("--grace", flags.grace, UINT32_MAX);
      const node = await ctx.client(command).nodes.drain(id, graceMs, { signal: ctx.signal });
      if (wantsJson(command)) printJson(ctx, messageJson(NodeSchema, node));
      else println(ctx.stdout, `node ${node.id} is draining (grace ${flags.grace})`);
    });

  nodes
    .command("revoke")
    .description("ban a node for good: its stream ends, its tasks run elsewhere, it cannot rejoin (operators only)")
    .argument("<id>", "node id")
    .option("--reason <text>", "why, for the record", "")
    .action(async (id: string, flags: { reason: string }, command: Command) => {
      const node = await ctx.client(command).nodes.revoke(id, flags.reason, { signal: ctx.signal });
      if (wantsJson(command)) printJson(ctx, messageJson(NodeSchema, node));
      else println(ctx.stdout, `node ${node.id} revoked`);
    });

  nodes
    .command("get")
    .description("show a node and each of its GPUs")
    .argument("<id>", "node id")
    .action(async (id: string, _flags: unknown, command: Command) => {
      const node = await ctx.client(command).nodes.get(id, { signal: ctx.signal });
      if (wantsJson(command)) printJson(ctx, messageJson(NodeSchema, node));
      else println(ctx.stdout, renderNode(node, new Date()));
    });
}
