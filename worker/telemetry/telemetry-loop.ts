import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { GpuTelemetrySchema } from "../../gen/ngpu/v1/gpu_pb.js";
import type { TelemetryReportSchema } from "../../gen/ngpu/v1/worker_pb.js";
import { type GpuInfo, type GpuReader, GpuReadError, type GpuSample } from "../gpu/gpu-reader.js";
import type { Logger } from "../log.js";

export interface TelemetryLoopOptions {
  readonly reader: GpuReader;
  readonly logger: Logger;
  readonly send: (report: MessageInitShape<typeof TelemetryReportSchema>) => void;
  /** Called when the GPUs read differ from those declared (appeared, vanished, recovered). */
  readonly onInventoryChanged: (gpus: readonly GpuInfo[], error: string) => void;
  /** Default 1000 ms; the control plane may change it with setInterval. */
  readonly intervalMs?: number;
}

export interface TelemetryLoop {
  setIntervalMs(ms: number): void;
  stop(): Promise<void>;
}

/** What a reading of one GPU looks like on the wire: only the fields the driver reported. */
export function sampleToProto(s: GpuSample): MessageInitShape<typeof GpuTelemetrySchema> {
  const opt = <T>(v: T | undefined, k: string) => (v === undefined ? {} : { [k]: v });
  return {
    index: s.index,
    uuid: s.uuid,
    time: timestampFromMs(s.timeMs),
    pstate: s.pstate ?? "",
    ...opt(s.utilizationPercent, "utilizationPercent"),
    ...opt(s.memoryUtilizationPercent, "memoryUtilizationPercent"),
    ...opt(s.memoryUsedBytes === undefined ? undefined : BigInt(s.memoryUsedBytes), "memoryUsedBytes"),
    ...opt(s.memoryTotalBytes === undefined ? undefined : BigInt(s.memoryTotalBytes), "memoryTotalBytes"),
    ...opt(s.temperatureCelsius, "temperatureCelsius"),
    ...opt(s.powerDrawWatts, "powerDrawWatts"),
    ...opt(s.powerLimitWatts, "powerLimitWatts"),
    ...opt(s.smClockMhz, "smClockMhz"),
    ...opt(s.memoryClockMhz, "memoryClockMhz"),
    ...opt(s.eccCorrectedErrors === undefined ? undefined : BigInt(s.eccCorrectedErrors), "eccCorrectedErrors"),
    ...opt(s.eccUncorrectedErrors === undefined ? undefined : BigInt(s.eccUncorrectedErrors), "eccUncorrectedErrors"),
    ...opt(s.fanSpeedPercent, "fanSpeedPercent"),
  };
}

/** Identity of an inventory, to notice when it changes. */
export function inventoryKey(gpus: readonly GpuInfo[]): string {
  return gpus.map((g) => `${g.index}:${g.uuid}:${g.memoryTotalBytes}`).join("|");
}

/**
 * Reads the GPUs every interval and sends what it read. A failed read is sent
 * as an error with no numbers — never stale or made-up ones — and logged once
 * per distinct failure, not every second.
 */
export function startTelemetryLoop(options: TelemetryLoopOptions, declared: { gpus: readonly GpuInfo[]; error: string }): TelemetryLoop {
  const { reader, logger, send } = options;
  const log = logger.child({ component: "telemetry" });
  let intervalMs = options.intervalMs ?? 1000;
  let lastError = declared.error;
  let lastInventory = inventoryKey(declared.gpus);
  let timer: NodeJS.Timeout | undefined;
  let inFlight: Promise<void> | undefined;
  let stopped = false;

  async function tick() {
    try {
      const reading = await reader.read(AbortSignal.timeout(Math.max(intervalMs * 5, 5000)));
      if (lastError) log.info("GPU readings recovered");
      lastError = "";
      send({ gpus: reading.samples.map(sampleToProto), error: "" });
      const key = inventoryKey(reading.gpus);
      if (key !== lastInventory) {
        lastInventory = key;
        options.onInventoryChanged(reading.gpus, "");
      }
    } catch (err) {
      const message = err instanceof GpuReadError ? `${err.code}: ${err.message}` : `GPU read failed: ${(err as Error).message}`;
      if (message !== lastError) log.error({ err: message }, "cannot read GPUs");
      lastError = message;
      send({ gpus: [], error: message });
    }
  }

  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      inFlight = tick().finally(() => {
        inFlight = undefined;
        schedule();
      });
    }, intervalMs);
  };
  schedule();

  return {
    setIntervalMs(ms) {
      intervalMs = Math.max(100, ms);
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await inFlight;
    },
  };
}
