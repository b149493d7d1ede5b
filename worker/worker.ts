import type { MessageInitShape } from "@bufbuild/protobuf";
import type { GpuSchema } from "../gen/ngpu/v1/gpu_pb.js";
import type { AppSpec, ConnectRequestSchema, FinishedSchema } from "../gen/ngpu/v1/worker_pb.js";
import { usageClaimBytes } from "../receipts/usage-claim.js";
import type { WorkerConfig } from "./config.js";
import { type GpuInfo, type GpuReader, GpuReadError, type GpuReading } from "./gpu/gpu-reader.js";
import { createNvidiaSmiReader } from "./gpu/nvidia-smi.js";
import { createSimulatedGpuReader, type SimulatedGpuReader } from "./gpu/simulated-gpu.js";
import type { Logger } from "./log.js";
import { startBuiltinInstance } from "./runtime/builtin.js";
import { dockerAvailable, startDockerInstance } from "./runtime/docker-runtime.js";
import { createInstancePool, type Instance } from "./runtime/instance-pool.js";
import { startProcessInstance } from "./runtime/process-runtime.js";
import { openInstanceRegistry } from "./runtime/instance-registry.js";
import { startWebhookReceiver } from "./runtime/webhook-receiver.js";
import { startControlSession } from "./session/control-session.js";
import { openNodeIdentity } from "./session/node-identity.js";
import { createTaskRunner } from "./tasks/task-runner.js";
import { startTelemetryLoop } from "./telemetry/telemetry-loop.js";

export const WORKER_VERSION = "0.1.0";

export type WorkerState = "STARTING" | "RUNNING" | "DRAINING" | "STOPPED";

export interface Worker {
  readonly state: WorkerState;
  /** Resolves with the node id once the control plane has welcomed the worker. */
  readonly ready: Promise<string>;
  nodeId(): string;
  /** Stops taking new work, lets running tasks finish (up to graceMs), then stops. */
  shutdown(graceMs?: number): Promise<void>;
  /** Ends a drain's grace period now: what still runs is handed back at once. */
  hurry(): void;
}

export interface WorkerDeps {
  readonly logger: Logger;
  /** Environment handed to app processes (the worker's own, normally). */
  readonly appBaseEnv: Readonly<Record<string, string | undefined>>;
}

/** Several simulated GPU specs read as one machine, indices numbered across them. */
function combineSimulated(config: WorkerConfig): { reader: GpuReader; setBusy: (i: number, busy: boolean) => void } {
  const parts: Array<{ reader: SimulatedGpuReader; offset: number }> = [];
  let offset = 0;
  for (const [i, spec] of config.simulateGpus.entries()) {
    parts.push({ reader: createSimulatedGpuReader(spec, { node: `${config.name}-${i}` }), offset });
    offset += spec.count;
  }
  return {
    reader: {
      async read(signal) {
        const readings = await Promise.all(parts.map((p) => p.reader.read(signal)));
        const shift = <T extends { index: number }>(items: readonly T[], by: number) => items.map((x) => ({ ...x, index: x.index + by }));
        return {
          gpus: readings.flatMap((r, i) => shift(r.gpus, parts[i]!.offset)),
          samples: readings.flatMap((r, i) => shift(r.samples, parts[i]!.offset)),
        } satisfies GpuReading;
      },
    },
    setBusy(index, busy) {
      const part = [...parts].reverse().find((p) => index >= p.offset);
      part?.reader.setBusy(index - part.offset, busy);
    },
  };
}

function gpuToProto(g: GpuInfo): MessageInitShape<typeof GpuSchema> {
  return {
    index: g.index,
    uuid: g.uuid,
    model: g.model,
    memoryTotalBytes: BigInt(g.memoryTotalBytes),
    driverVersion: g.driverVersion ?? "",
    pciBusId: g.pciBusId ?? "",
    migEnabled: g.migEnabled,
    simulated: g.simulated,
  };
}

/**
 * A worker: reads its GPUs, joins the control plane over one gRPC stream,
 * runs the attempts it is given and streams telemetry.
 * States: STARTING → RUNNING → DRAINING → STOPPED.
 */
export async function startWorker(config: WorkerConfig, deps: WorkerDeps): Promise<Worker> {
  const { logger } = deps;
  let state: WorkerState = "STARTING";
  const simulated = config.simulateGpus.length > 0 ? combineSimulated(config) : undefined;
  const reader: GpuReader = simulated?.reader ?? createNvidiaSmiReader({ binary: config.nvidiaSmiPath });

  let gpus: readonly GpuInfo[] = [];
  let gpuError = "";
  try {
    gpus = (await reader.read(AbortSignal.timeout(10_000))).gpus;
  } catch (err) {
    gpuError = err instanceof GpuReadError ? `${err.code}: ${err.message}` : `GPU read failed: ${(err as Error).message}`;
    logger.error({ err: gpuError }, "cannot read GPUs; joining without them (only CPU apps can run here)");
  }
  const runtimes = ["process", "builtin"];
  if (await dockerAvailable({ timeoutMs: 3_000 }).catch(() => false)) runtimes.push("docker");

  const identity = openNodeIdentity(config.dataDir);
  const registry = openInstanceRegistry(config.dataDir);
  const reaped = registry.reapLeftovers();
  if (reaped > 0) logger.warn({ reaped }, "stopped app processes a previous run of this worker left behind");
  // Containers cannot reach the host's loopback; each webhook URL carries its own secret token.
  const receiver = await startWebhookReceiver(runtimes.includes("docker") ? { host: "0.0.0.0" } : {});
  // Apps get the worker's environment minus its own settings (the enrollment token must not leak into apps).
  const appBaseEnv = Object.fromEntries(Object.entries(deps.appBaseEnv).filter(([k]) => !k.startsWith("NGPU_")));
  const pool = createInstancePool(logger);
  const startInstance = (app: AppSpec | undefined, gpuIndices: readonly number[], signal: AbortSignal): Promise<Instance> => {
    const runtime = app?.runtime?.kind;
    const env = app?.env ?? {};
    if (runtime?.case === "builtin") return startBuiltinInstance(runtime.value.name, env, signal);
    if (runtime?.case === "process") {
      return startProcessInstance({
        command: runtime.value.command,
        ...(runtime.value.workingDir ? { cwd: runtime.value.workingDir } : {}),
        baseEnv: { ...appBaseEnv, ...registry.env },
        env,
        gpuIndices,
        signal,
      }).then((instance) => {
        registry.add(instance.pid);
        void instance.exited.then(() => registry.remove(instance.pid));
        return instance;
      });
    }
    if (runtime?.case === "docker") {
      return startDockerInstance({ image: runtime.value.image, containerPort: runtime.value.port || 5000, env, gpuIndices, signal });
    }
    return Promise.reject(new Error(`this worker cannot run ${runtime?.case ?? "an unspecified"} runtime`));
  };

  let session: ReturnType<typeof startControlSession> | undefined;
  // Usage receipts: the worker signs what it measured for each attempt with its node key.
  const gpuUuidsByAttempt = new Map<string, string[]>();
  const signFinished = <M extends MessageInitShape<typeof ConnectRequestSchema>>(m: M): M => {
    const body = m.message;
    if (body?.case !== "taskUpdate" || body.value.update?.case !== "finished") return m;
    const u = body.value;
    const f = u.update!.value as MessageInitShape<typeof FinishedSchema>;
    if (f.workerSignature && f.workerSignature.length > 0) return m;
    const gpuUuids = gpuUuidsByAttempt.get(u.attemptId ?? "") ?? [];
    gpuUuidsByAttempt.delete(u.attemptId ?? "");
    const claim = { taskId: u.taskId ?? "", attemptId: u.attemptId ?? "", gpuUuids, startedAtMs: Number(f.startedAtMs ?? 0), endedAtMs: Number(f.endedAtMs ?? 0), gpuMs: Number(f.gpuMs ?? 0) };
    f.gpuUuids = gpuUuids;
    f.workerSignature = identity.sign(usageClaimBytes(claim));
    return m;
  };
  const runner = createTaskRunner({
    logger,
    pool,
    receiver,
    startInstance,
    send: (m) => session?.send(signFinished(m)),
    ...(simulated ? { onGpuBusy: (indices: readonly number[], busy: boolean) => indices.forEach((i) => simulated.setBusy(i, busy)) } : {}),
  });

  session = startControlSession({
    url: config.controlPlaneUrl,
    ...(config.tls ? { tls: config.tls } : {}),
    logger,
    hello: async () => ({
      enrollmentToken: config.enrollmentToken,
      nodeId: identity.nodeId(),
      publicKey: identity.publicKey,
      name: config.name,
      gpus: gpus.map(gpuToProto),
      gpuError,
      runtimes,
      maxConcurrentTasks: config.maxConcurrentTasks || Math.max(1, gpus.length),
      version: WORKER_VERSION,
      running: runner.held(),
      warmAppIds: pool.warmAppIds(),
    }),
    prove: (nonce) => identity.prove(nonce),
    onWelcome: (nodeId, telemetryIntervalMs) => {
      identity.save(nodeId);
      telemetry.setIntervalMs(telemetryIntervalMs);
      if (state === "STARTING") state = "RUNNING";
    },
    onConnected: () => {
      // Reconnected while draining: say so again before anything is assigned here.
      if (state === "DRAINING") session?.send({ message: { case: "draining", value: { graceMs: 0 } } });
      runner.resendResults();
    },
    onMessage: (message) => {
      const m = message.message;
      if (m.case === "assignment") {
        gpuUuidsByAttempt.set(m.value.attemptId, m.value.gpuIndices.map((i) => gpus.find((g) => g.index === i)?.uuid ?? ""));
        if (state !== "RUNNING") {
          // Assigned while draining (the control plane had not heard yet): hand it straight back.
          runner.release(m.value);
          return;
        }
        runner.assign(m.value);
      } else if (m.case === "cancel") {
        runner.cancel(m.value.attemptId, m.value.reason || "cancelled");
      } else if (m.case === "drain") {
        void drain(m.value.graceMs || 30_000);
      } else if (m.case === "warmApp") {
        if (state === "RUNNING") runner.warmApp(m.value);
      } else if (m.case === "releaseApp") {
        runner.releaseApp(m.value.appId);
      }
    },
    warmAppIds: () => pool.warmAppIds(),
  });

  const telemetry = startTelemetryLoop(
    {
      reader,
      logger,
      send: (report) => session?.send({ message: { case: "telemetry", value: report } }),
      onInventoryChanged: (now) => {
        logger.warn({ gpus: now.length }, "GPU inventory changed; rejoining with the new inventory");
        gpus = now;
        gpuError = "";
        session?.reconnect();
      },
    },
    { gpus, error: gpuError },
  );

  /** No new work; running attempts may finish within graceMs, then the rest are handed back. */
  let draining: Promise<void> | undefined;
  let endGrace: (() => void) | undefined;
  const drain = (graceMs: number) => {
    draining ??= (async () => {
      state = "DRAINING";
      logger.info({ graceMs }, "draining: no new tasks; running ones may finish");
      session.send({ message: { case: "draining", value: { graceMs } } });
      const grace = new Promise<void>((resolve) => {
        setTimeout(resolve, graceMs).unref();
        endGrace = resolve;
      });
      await Promise.race([runner.idle(), grace]);
      // What is still running goes back to the queue, to run elsewhere.
      await runner.releaseAll();
    })();
    return draining;
  };

  let stopping: Promise<void> | undefined;
  return {
    get state() {
      return state;
    },
    ready: session.ready,
    nodeId: () => identity.nodeId(),
    hurry() {
      endGrace?.();
    },
    shutdown(graceMs = 30_000) {
      stopping ??= (async () => {
        await drain(graceMs);
        await runner.shutdown();
        await telemetry.stop();
        await session.close();
        await pool.shutdown();
        await receiver.close();
        state = "STOPPED";
      })();
      return stopping;
    },
  };
}
