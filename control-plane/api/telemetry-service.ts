import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { type GpuTelemetrySeries, GpuTelemetrySeriesSchema, TelemetryService } from "../../gen/ngpu/v1/telemetry_pb.js";
import type { Db } from "../db/database.js";
import { type GpuSamplePoint, readGpuSamples } from "../db/gpu-samples.js";
import { getTask } from "../db/tasks.js";
import { invalidArgument, notFound } from "../errors.js";
import type { TelemetryHistory } from "../monitor/telemetry-history.js";
import { type Authenticate, requireApp, requireNotWidget } from "./auth.js";
import { checkTimestamp, requireString } from "./validate.js";

export interface TelemetryServiceDeps {
  readonly db: Db;
  readonly authenticate: Authenticate;
  /** Flushed before a read, so the last second of readings is in the answer. */
  readonly history: TelemetryHistory;
}

const DEFAULT_MAX_POINTS = 500;
const MAX_POINTS = 2000;
const MAX_RANGE_MS = 31 * 24 * 3600_000;
/** Readings a little before and after an attempt, so its chart shows the GPU going busy and idle. */
const TASK_MARGIN_MS = 2_000;

function maxPoints(value: number): number {
  if (value === 0) return DEFAULT_MAX_POINTS;
  if (value < 2 || value > MAX_POINTS) throw invalidArgument("max_points", `must be 0 or between 2 and ${MAX_POINTS}`);
  return value;
}

/** Averaging step so that a range fits in `points` points per GPU: a whole number of seconds. */
function stepFor(rangeMs: number, points: number): number {
  return Math.max(1000, Math.ceil(rangeMs / points / 1000) * 1000);
}

function toSeries(nodeId: string, attemptId: string, points: readonly GpuSamplePoint[]): GpuTelemetrySeries[] {
  const byGpu = new Map<number, GpuTelemetrySeries>();
  for (const p of points) {
    let series = byGpu.get(p.gpuIndex);
    if (!series) {
      series = create(GpuTelemetrySeriesSchema, { nodeId, gpuIndex: p.gpuIndex, attemptId });
      byGpu.set(p.gpuIndex, series);
    }
    series.points.push({
      $typeName: "ngpu.v1.TelemetryPoint",
      time: timestampFromDate(p.time),
      ...(p.utilizationPercent !== null ? { utilizationPercent: p.utilizationPercent } : {}),
      ...(p.memoryUsedBytes !== null ? { memoryUsedBytes: BigInt(p.memoryUsedBytes) } : {}),
      ...(p.memoryTotalBytes !== null ? { memoryTotalBytes: BigInt(p.memoryTotalBytes) } : {}),
      ...(p.temperatureCelsius !== null ? { temperatureCelsius: p.temperatureCelsius } : {}),
      ...(p.powerDrawWatts !== null ? { powerDrawWatts: p.powerDrawWatts } : {}),
      ...(p.powerLimitWatts !== null ? { powerLimitWatts: p.powerLimitWatts } : {}),
    });
  }
  return [...byGpu.values()];
}

/** GPU telemetry history: a task's GPUs during its attempts, or a node over a range. */
export function createTelemetryService(deps: TelemetryServiceDeps): ServiceImpl<typeof TelemetryService> {
  const { db, authenticate, history } = deps;
  return {
    async getTaskTelemetry(req, ctx) {
      const principal = await authenticate(ctx);
      const points = maxPoints(req.maxPoints);
      const task = await getTask(db, principal.workspaceId, requireString("task_id", req.taskId, 64));
      requireApp(principal, { id: task.app_id, name: task.app_name }, "read", "reading a task's telemetry");
      const attempts = await db
        .selectFrom("attempts")
        .select(["id", "node_id", "gpu_indices", "created_at", "started_at", "ended_at"])
        .where("task_id", "=", task.id)
        .orderBy("created_at")
        .orderBy("fencing_token")
        .execute();
      await history.flush();
      const series: GpuTelemetrySeries[] = [];
      for (const a of attempts) {
        if (a.gpu_indices.length === 0) continue;
        const start = new Date((a.started_at ?? a.created_at).getTime() - TASK_MARGIN_MS);
        const end = new Date((a.ended_at ?? new Date()).getTime() + TASK_MARGIN_MS);
        const rows = await readGpuSamples(db, { nodeId: a.node_id, gpuIndices: a.gpu_indices, start, end, stepMs: stepFor(end.getTime() - start.getTime(), points) });
        series.push(...toSeries(a.node_id, a.id, rows));
      }
      return { series };
    },

    async getNodeTelemetry(req, ctx) {
      requireNotWidget(await authenticate(ctx), "reading a node's telemetry");
      const nodeId = requireString("node_id", req.nodeId, 64);
      const points = maxPoints(req.maxPoints);
      if (!req.startTime) throw invalidArgument("start_time", "is required");
      const start = checkTimestamp("start_time", req.startTime);
      const end = req.endTime ? checkTimestamp("end_time", req.endTime) : new Date();
      if (end <= start) throw invalidArgument("end_time", "must be after start_time");
      if (end.getTime() - start.getTime() > MAX_RANGE_MS) throw invalidArgument("end_time", "the range is at most 31 days");
      const node = await db.selectFrom("nodes").select("id").where("id", "=", nodeId).executeTakeFirst();
      if (!node) throw notFound("node", nodeId);
      await history.flush();
      const stepMs = stepFor(end.getTime() - start.getTime(), points);
      const rows = await readGpuSamples(db, { nodeId, start, end, stepMs });
      return { series: toSeries(nodeId, "", rows), stepMs: BigInt(stepMs) };
    },
  };
}
