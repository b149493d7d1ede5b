import type { Command } from "commander";
import { PoolStatusSchema, ScalingEventSchema, type PoolPolicyInit, type ScalingEvent } from "../../sdk/index.js";
import { messageJson, println, printJson, wantsJson, type CliContext } from "../context.js";
import { UsageError } from "../errors.js";
import { INT32_MAX, parseDuration, parseInteger } from "../parse.js";
import { renderPoolStatus, renderScalingEvents } from "../render-pool.js";

interface PoolFlags {
  readonly min?: string;
  readonly max?: string;
  readonly idleTimeout?: string;
  readonly queueDelay?: string;
  readonly tasksPerNode?: string;
  readonly stepUp?: string;
  readonly stepDown?: string;
  readonly remove?: boolean;
}

/** The policy the flags set on top of the current one, or undefined when no policy flag was given. */
function policyFromFlags(flags: PoolFlags, current: PoolPolicyInit | undefined): PoolPolicyInit | undefined {
  const given = [flags.min, flags.max, flags.idleTimeout, flags.queueDelay, flags.tasksPerNode, flags.stepUp, flags.stepDown].some((f) => f !== undefined);
  if (!given) return undefined;
  const int = (flag: string, v: string | undefined) => (v === undefined ? undefined : parseInteger(flag, v, { min: 0, max: INT32_MAX }));
  const max = int("--max", flags.max) ?? current?.maxNodes;
  if (max === undefined) throw new UsageError("--max is required when the app has no pool yet");
  return {
    minNodes: int("--min", flags.min) ?? current?.minNodes,
    maxNodes: max,
    idleTimeoutMs: flags.idleTimeout === undefined ? current?.idleTimeoutMs : parseDuration("--idle-timeout", flags.idleTimeout),
    targetQueueDelayMs: flags.queueDelay === undefined ? current?.targetQueueDelayMs : parseDuration("--queue-delay", flags.queueDelay),
    targetTasksPerNode: int("--tasks-per-node", flags.tasksPerNode) ?? current?.targetTasksPerNode,
    scaleUpStep: int("--step-up", flags.stepUp) ?? current?.scaleUpStep,
    scaleDownStep: int("--step-down", flags.stepDown) ?? current?.scaleDownStep,
  };
}

/** `apps pool` (show or set an app's pool) and `apps pool-events` (its scaling decisions). */
export function registerPoolCommands(apps: Command, ctx: CliContext): void {
  apps
    .command("pool")
    .description("show an app's pool (nodes, queue, cold starts, recent decisions); with flags, set its policy")
    .argument("<app>", "app name or id")
    .option("--min <n>", "nodes kept warm when idle (0: scale to zero)")
    .option("--max <n>", "most nodes the app's tasks ever run on")
    .option("--idle-timeout <duration>", "release a node idle this long, e.g. 5m")
    .option("--queue-delay <duration>", "scale up when a task has waited this long, e.g. 2s")
    .option("--tasks-per-node <n>", "or: scale up beyond this many queued + running tasks per node")
    .option("--step-up <n>", "nodes added per round at most (0: no limit)")
    .option("--step-down <n>", "nodes released per round at most (0: 1)")
    .option("--remove", "remove the pool: its nodes are released")
    .action(async (appName: string, flags: PoolFlags, command: Command) => {
      const client = ctx.client(command);
      const options = { signal: ctx.signal };
      if (flags.remove) {
        if (policyFromFlags(flags, undefined) !== undefined) throw new UsageError("--remove: not with policy flags");
        await client.apps.update({ app: appName, removePool: true }, options);
        println(ctx.stderr, `removed the pool of ${appName}`);
      } else {
        const current = (await client.apps.get(appName, options)).pool;
        const policy = policyFromFlags(flags, current);
        if (policy) {
          await client.apps.update({ app: appName, pool: policy }, options);
          println(ctx.stderr, `set the pool of ${appName}`);
        }
      }
      const status = await client.pools.status(appName, options);
      const { events } = await client.pools.events(appName, { pageSize: 10 }, options);
      if (wantsJson(command)) printJson(ctx, messageJson(PoolStatusSchema, status));
      else println(ctx.stdout, renderPoolStatus(status, events, new Date()));
    });

  apps
    .command("pool-events")
    .description("list an app's scaling decisions, newest first, with their reasons")
    .argument("<app>", "app name or id")
    .option("--limit <n>", "at most this many (default 50)")
    .action(async (appName: string, flags: { limit?: string }, command: Command) => {
      const limit = flags.limit === undefined ? 50 : parseInteger("--limit", flags.limit, { min: 1, max: 10_000 });
      const found: ScalingEvent[] = [];
      for await (const e of ctx.client(command).pools.eventsAll(appName, { pageSize: Math.min(limit, 500) }, { signal: ctx.signal })) {
        found.push(e);
        if (found.length >= limit) break;
      }
      if (wantsJson(command)) printJson(ctx, { events: found.map((e) => messageJson(ScalingEventSchema, e)) });
      else if (found.length === 0) println(ctx.stderr, `no scaling decisions for ${appName} yet`);
      else println(ctx.stdout, renderScalingEvents(found));
    });
}
