import type { Command } from "commander";
import { create } from "@bufbuild/protobuf";
import { AppSchema, DeployAppResponseSchema, formatUsd, parseUsd, type App, type RuntimeInit } from "../../sdk/index.js";
import { messageJson, println, printJson, wantsJson, type CliContext } from "../context.js";
import { UsageError } from "../errors.js";
import { parseBytes, parseDuration, parseInteger, parseKeyValues, splitCommandLine } from "../parse.js";
import { renderApp, renderAppTable } from "../render.js";
import { collect } from "./options.js";
import { registerPoolCommands } from "./pools.js";

/** GPUs per task when `apps deploy` is not given --gpus: this is a GPU network. */
export const DEFAULT_GPU_COUNT = 1;

interface DeployFlags {
  readonly command?: string;
  readonly image?: string;
  readonly builtin?: string;
  readonly port?: string;
  readonly workdir?: string;
  readonly gpus?: string;
  readonly minVram?: string;
  readonly gpuModel?: string[];
  readonly env?: string[];
  readonly timeout?: string;
  readonly description?: string;
}

function runtimeFromFlags(flags: DeployFlags): RuntimeInit {
  const given = [flags.command, flags.image, flags.builtin].filter((f) => f !== undefined).length;
  if (given !== 1) {
    throw new UsageError(
      "apps deploy: give exactly one of --command \"<argv>\" (process runtime), --image <image> (docker runtime) or --builtin <name>",
    );
  }
  if (flags.builtin !== undefined) {
    if (flags.port !== undefined || flags.workdir !== undefined) throw new UsageError("--port, --workdir: not with --builtin");
    return { builtin: { name: flags.builtin } };
  }
  if (flags.image !== undefined) {
    if (flags.workdir !== undefined) throw new UsageError("--workdir: only with --command");
    return { docker: { image: flags.image, port: flags.port === undefined ? undefined : parseInteger("--port", flags.port, { min: 1, max: 65535 }) } };
  }
  if (flags.port !== undefined) throw new UsageError("--port: only with --image (a process app serves on $PORT)");
  return { process: { command: splitCommandLine("--command", flags.command ?? ""), workingDir: flags.workdir } };
}

export function registerAppCommands(program: Command, ctx: CliContext): void {
  const apps = program.command("apps").description("deploy and inspect apps");

  apps
    .command("deploy")
    .description("create an app, or a new version of the app with this name")
    .argument("<name>", "lowercase letters, digits and dashes")
    .option("--command <argv>", "start the app as this command on the worker (quoted like a shell line); it serves the Cog HTTP API on $PORT")
    .option("--image <image>", "run the app as this container image (a Cog image)")
    .option("--builtin <name>", "run inside the worker, no app server: echo or sleep (for probes and tests)")
    .option("--port <port>", "with --image: the port inside the container (default 5000)")
    .option("--workdir <dir>", "with --command: working directory on the worker")
    .option("--gpus <n>", `GPUs per task (default ${DEFAULT_GPU_COUNT}; 0 for a CPU-only app)`)
    .option("--min-vram <size>", "minimum memory of each GPU, e.g. 8GiB")
    .option("--gpu-model <model>", "only GPUs of this model, e.g. \"NVIDIA GeForce RTX 3090\" (repeatable)", collect)
    .option("--env <key=value>", "environment of the app (repeatable)", collect)
    .option("--timeout <duration>", "default execution timeout per task, e.g. 60s")
    .option("--description <text>", "what the app does")
    .action(async (name: string, flags: DeployFlags, command: Command) => {
      const runtime = runtimeFromFlags(flags);
      const { app, created } = await ctx.client(command).apps.deploy(
        {
          name,
          runtime,
          gpu: {
            count: flags.gpus === undefined ? DEFAULT_GPU_COUNT : parseInteger("--gpus", flags.gpus, { min: 0, max: 16 }),
            minMemoryBytes: flags.minVram === undefined ? undefined : parseBytes("--min-vram", flags.minVram),
            allowedModels: flags.gpuModel ?? [],
          },
          env: parseKeyValues("--env", flags.env ?? []),
          timeoutMs: flags.timeout === undefined ? undefined : parseDuration("--timeout", flags.timeout),
          description: flags.description,
        },
        { signal: ctx.signal },
      );
      if (wantsJson(command)) {
        printJson(ctx, messageJson(DeployAppResponseSchema, create(DeployAppResponseSchema, { app, created })));
        return;
      }
      println(ctx.stderr, created ? `deployed ${app.name} version ${app.version}` : `${app.name} version ${app.version} is already deployed`);
      println(ctx.stdout, renderApp(app, new Date()));
    });

  apps
    .command("list")
    .description("list apps")
    .action(async (_flags: unknown, command: Command) => {
      const found: App[] = [];
      for await (const app of ctx.client(command).apps.listAll({}, { signal: ctx.signal })) found.push(app);
      if (wantsJson(command)) printJson(ctx, { apps: found.map((a) => messageJson(AppSchema, a)) });
      else if (found.length === 0) println(ctx.stderr, "no apps; deploy one with: ngpu apps deploy <name> --image <image>");
      else println(ctx.stdout, renderAppTable(found, new Date()));
    });

  apps
    .command("get")
    .description("show an app")
    .argument("<app>", "app name or id")
    .action(async (nameOrId: string, _flags: unknown, command: Command) => {
      const app = await ctx.client(command).apps.get(nameOrId, { signal: ctx.signal });
      if (wantsJson(command)) printJson(ctx, messageJson(AppSchema, app));
      else println(ctx.stdout, renderApp(app, new Date()));
    });

  apps
    .command("publish")
    .description("let any workspace call the app (by id or <workspace id>/<name>), paying for its own calls")
    .argument("<app>", "app name or id")
    .option("--fee-usd <usd>", "charge other workspaces this much per successful call, credited to you (e.g. 0.002)")
    .action(async (nameOrId: string, flags: { feeUsd?: string }, command: Command) => {
      const fee = flags.feeUsd === undefined ? undefined : parseUsd(flags.feeUsd);
      if (fee === undefined && flags.feeUsd !== undefined) throw new UsageError(`--fee-usd: ${JSON.stringify(flags.feeUsd)} is not an amount in USD such as 0.002`);
      const app = await ctx.client(command).apps.update({ app: nameOrId, public: true, ...(fee !== undefined ? { callFeeNanoUsd: fee } : {}) }, { signal: ctx.signal });
      if (wantsJson(command)) printJson(ctx, messageJson(AppSchema, app));
      else println(ctx.stdout, `${app.name} is published as ${app.workspaceId}/${app.name} (${app.id}); fee per call: ${formatUsd(app.callFeeNanoUsd)} USD`);
    });

  apps
    .command("unpublish")
    .description("only your workspace may call the app again")
    .argument("<app>", "app name or id")
    .action(async (nameOrId: string, _flags: unknown, command: Command) => {
      const app = await ctx.client(command).apps.update({ app: nameOrId, public: false }, { signal: ctx.signal });
      if (wantsJson(command)) printJson(ctx, messageJson(AppSchema, app));
      else println(ctx.stdout, `${app.name} is private`);
    });

  registerPoolCommands(apps, ctx);
}
