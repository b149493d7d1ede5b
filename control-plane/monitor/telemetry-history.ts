import { type Insertable, sql } from "kysely";
import type { GpuTelemetry } from "../../gen/ngpu/v1/gpu_pb.js";
import type { Db } from "../db/database.js";
import type { GpuSampleTable } from "../db/schema.js";
import type { Logger } from "../log.js";

export interface TelemetryHistoryOptions {
  readonly db: Db;
  readonly logger: Logger;
  /** How often buffered readings are written. Default 1000 ms. */
  readonly flushIntervalMs?: number;
  /** Readings older than this are averaged per minute. Default 6 h. */
  readonly fullResolutionMs?: number;
  /** Per-minute averages older than this are deleted. Default 30 days. */
  readonly retentionMs?: number;
  /** Readings kept in memory at most while the database is slow; older ones are dropped. Default 200,000. */
  readonly maxBuffered?: number;
}

export interface TelemetryHistory {
  record(nodeId: string, readings: readonly GpuTelemetry[]): void;
  /** Writes what is buffered now. */
  flush(): Promise<void>;
  /** Averages old readings per minute and prunes; safe to run on every replica at once. */
  compact(): Promise<void>;
  shutdown(): Promise<void>;
}

type Row = Insertable<GpuSampleTable>;

const CHUNK = 1000;
const COMPACT_LOCK_KEY = 0x6e677076;

/**
 * GPU readings over time, so a task's GPU usage can be shown after it ran.
 * Writes are batched (many rows per INSERT), because one control plane takes
 * readings from thousands of GPUs every second.
 */
export function startTelemetryHistory(options: TelemetryHistoryOptions): TelemetryHistory {
  const { db, logger } = options;
  const log = logger.child({ component: "telemetry-history" });
  const maxBuffered = options.maxBuffered ?? 200_000;
  let buffer: Row[] = [];
  let flushing: Promise<void> | undefined;
  let dropped = 0;

  const num = (v: number | bigint | undefined) => (v === undefined ? null : Number(v));

  async function write(rows: Row[]) {
    for (let i = 0; i < rows.length; i += CHUNK) {
      await db.insertInto("gpu_samples").values(rows.slice(i, i + CHUNK)).execute();
    }
  }

  async function flush(): Promise<void> {
    if (flushing) return flushing;
    if (buffer.length === 0) return;
    const rows = buffer;
    buffer = [];
    flushing = write(rows)
      .catch((err) => log.warn({ err, rows: rows.length }, "telemetry history write failed; readings dropped"))
      .finally(() => (flushing = undefined));
    return flushing;
  }

  const timer = setInterval(() => void flush(), options.flushIntervalMs ?? 1_000);
  timer.unref();
  const fullMs = options.fullResolutionMs ?? 6 * 3600_000;
  const retentionMs = options.retentionMs ?? 30 * 24 * 3600_000;

  return {
    record(nodeId, readings) {
      for (const r of readings) {
        if (buffer.length >= maxBuffered) {
          if (dropped++ % 10_000 === 0) log.warn({ dropped }, "telemetry history buffer full; dropping readings");
          return;
        }
        buffer.push({
          node_id: nodeId,
          gpu_index: r.index,
          time: r.time ? new Date(Number(r.time.seconds) * 1000 + Math.floor(r.time.nanos / 1e6)) : new Date(),
          utilization_percent: num(r.utilizationPercent),
          memory_used_bytes: num(r.memoryUsedBytes),
          memory_total_bytes: num(r.memoryTotalBytes),
          temperature_celsius: num(r.temperatureCelsius),
          power_draw_watts: num(r.powerDrawWatts),
          power_limit_watts: num(r.powerLimitWatts),
          sm_clock_mhz: num(r.smClockMhz),
          ecc_uncorrected_errors: num(r.eccUncorrectedErrors),
        });
      }
    },
    flush,
    async compact() {
      await db.transaction().execute(async (tx) => {
        const locked = await sql<{ ok: boolean }>`SELECT pg_try_advisory_xact_lock(${COMPACT_LOCK_KEY}) AS ok`.execute(tx);
        if (!locked.rows[0]?.ok) return;
        const cutoff = sql`date_trunc('minute', now() - make_interval(secs => ${fullMs / 1000}))`;
        await sql`
          INSERT INTO gpu_samples_minute
          SELECT node_id, gpu_index, date_trunc('minute', time), avg(utilization_percent), avg(memory_used_bytes)::bigint,
            max(memory_total_bytes), avg(temperature_celsius), avg(power_draw_watts), max(power_limit_watts),
            avg(sm_clock_mhz)::int, max(ecc_uncorrected_errors)
          FROM gpu_samples WHERE time < ${cutoff}
          GROUP BY node_id, gpu_index, date_trunc('minute', time)`.execute(tx);
        await sql`DELETE FROM gpu_samples WHERE time < ${cutoff}`.execute(tx);
        await sql`DELETE FROM gpu_samples_minute WHERE time < now() - make_interval(secs => ${retentionMs / 1000})`.execute(tx);
      });
    },
    async shutdown() {
      clearInterval(timer);
      await flush();
      await flushing;
    },
  };
}
