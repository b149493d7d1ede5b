import { sql } from "kysely";
import type { Db } from "./database.js";

/** A GPU's readings averaged over one step. Absent (null) when no reading in the step had the value. */
export interface GpuSamplePoint {
  readonly gpuIndex: number;
  readonly time: Date;
  readonly utilizationPercent: number | null;
  readonly memoryUsedBytes: number | null;
  readonly memoryTotalBytes: number | null;
  readonly temperatureCelsius: number | null;
  readonly powerDrawWatts: number | null;
  readonly powerLimitWatts: number | null;
}

/**
 * A node's readings in [start, end), from both the full-resolution table and
 * the per-minute averages, averaged per `stepMs` (at least 1 s) and GPU; oldest first.
 */
export async function readGpuSamples(
  db: Db,
  query: { nodeId: string; gpuIndices?: readonly number[] | undefined; start: Date; end: Date; stepMs: number },
): Promise<GpuSamplePoint[]> {
  const step = Math.max(1000, Math.round(query.stepMs)) / 1000;
  const gpus = query.gpuIndices && query.gpuIndices.length > 0 ? sql`AND gpu_index IN (${sql.join([...query.gpuIndices])})` : sql``;
  const range = sql`node_id = ${query.nodeId} AND time >= ${query.start} AND time < ${query.end} ${gpus}`;
  const result = await sql<{
    gpu_index: number;
    bucket: Date;
    utilization_percent: number | null;
    memory_used_bytes: number | null;
    memory_total_bytes: number | null;
    temperature_celsius: number | null;
    power_draw_watts: number | null;
    power_limit_watts: number | null;
  }>`
    SELECT gpu_index, to_timestamp(floor(extract(epoch FROM time) / ${step}) * ${step}) AS bucket,
      avg(utilization_percent)::float8 AS utilization_percent, avg(memory_used_bytes)::float8 AS memory_used_bytes,
      max(memory_total_bytes)::float8 AS memory_total_bytes, avg(temperature_celsius)::float8 AS temperature_celsius,
      avg(power_draw_watts)::float8 AS power_draw_watts, max(power_limit_watts)::float8 AS power_limit_watts
    FROM (
      SELECT * FROM gpu_samples WHERE ${range}
      UNION ALL
      SELECT * FROM gpu_samples_minute WHERE ${range}
    ) s
    GROUP BY gpu_index, bucket
    ORDER BY gpu_index, bucket`.execute(db);
  return result.rows.map((r) => ({
    gpuIndex: r.gpu_index,
    time: new Date(r.bucket),
    utilizationPercent: r.utilization_percent,
    memoryUsedBytes: r.memory_used_bytes === null ? null : Math.round(r.memory_used_bytes),
    memoryTotalBytes: r.memory_total_bytes === null ? null : Math.round(r.memory_total_bytes),
    temperatureCelsius: r.temperature_celsius,
    powerDrawWatts: r.power_draw_watts,
    powerLimitWatts: r.power_limit_watts,
  }));
}
