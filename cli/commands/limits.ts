import type { Command } from "commander";
import { formatUsd } from "../../sdk/index.js";
import { println, printJson, wantsJson, type CliContext } from "../context.js";
import { parseInteger, usdFlag } from "../parse.js";

export function registerLimitCommands(program: Command, ctx: CliContext): void {
  const limits = program.command("limits").description("limits that protect your money: concurrency, submit rate, monthly spend cap");

  limits
    .command("show", { isDefault: true })
    .description("show the workspace's limits, its spend this month (UTC) and its unfinished tasks")
    .action(async (_flags: unknown, command: Command) => {
      const res = await ctx.client(command).limits.get({ signal: ctx.signal });
      const l = res.limits;
      if (wantsJson(command)) {
        printJson(ctx, { maxConcurrentTasks: l?.maxConcurrentTasks ?? 0, maxSubmitsPerMinute: l?.maxSubmitsPerMinute ?? 0, monthlySpendCapNanoUsd: String(l?.monthlySpendCapNanoUsd ?? 0n), monthSpendNanoUsd: String(res.monthSpendNanoUsd), unfinishedTasks: res.unfinishedTasks });
        return;
      }
      const none = (n: number | bigint | undefined, text: string) => (!n ? "none" : text);
      println(ctx.stdout, `concurrent tasks:   ${res.unfinishedTasks} unfinished, limit ${none(l?.maxConcurrentTasks, String(l?.maxConcurrentTasks))}`);
      println(ctx.stdout, `submits per minute: limit ${none(l?.maxSubmitsPerMinute, String(l?.maxSubmitsPerMinute))}`);
      println(ctx.stdout, `spend this month:   ${formatUsd(res.monthSpendNanoUsd)} USD of ${none(l?.monthlySpendCapNanoUsd, formatUsd(l?.monthlySpendCapNanoUsd ?? 0n))} (UTC month)`);
    });

  limits
    .command("set")
    .description("replace the limits (a limit not given is removed); needs a full key")
    .option("--max-concurrent <n>", "unfinished tasks at most")
    .option("--max-submits-per-minute <n>", "tasks submitted in any 60 s at most")
    .option("--monthly-cap-usd <usd>", "spend in a calendar month (UTC) at most, e.g. 100")
    .action(async (flags: { maxConcurrent?: string; maxSubmitsPerMinute?: string; monthlyCapUsd?: string }, command: Command) => {
      const set = await ctx.client(command).limits.set(
        {
          maxConcurrentTasks: flags.maxConcurrent === undefined ? 0 : parseInteger("--max-concurrent", flags.maxConcurrent, { min: 0, max: 1_000_000 }),
          maxSubmitsPerMinute: flags.maxSubmitsPerMinute === undefined ? 0 : parseInteger("--max-submits-per-minute", flags.maxSubmitsPerMinute, { min: 0, max: 1_000_000 }),
          monthlySpendCapNanoUsd: flags.monthlyCapUsd === undefined ? 0n : usdFlag("--monthly-cap-usd", flags.monthlyCapUsd),
        },
        { signal: ctx.signal },
      );
      println(ctx.stdout, `limits set: concurrent ${set.maxConcurrentTasks || "none"}, submits/min ${set.maxSubmitsPerMinute || "none"}, monthly cap ${set.monthlySpendCapNanoUsd ? `${formatUsd(set.monthlySpendCapNanoUsd)} USD` : "none"}`);
    });
}
