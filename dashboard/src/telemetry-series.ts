import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { GpuTelemetrySeries, TelemetryPoint } from "../../gen/ngpu/v1/telemetry_pb.js";
import type { ChartSeries } from "./components/chart.js";

const COLORS = ["#3b6fe0", "#e0663b", "#2f9e5b", "#9b3be0", "#c9a100", "#0fa3b1"];

/**
 * Lines for a chart from GPU series: one x axis (the union of every series' times, in
 * seconds) and, per GPU and per metric, its values at those times (null where it had none).
 */
export function alignSeries(
  series: readonly GpuTelemetrySeries[],
  metrics: ReadonlyArray<{ label: string; scale: string; pick: (p: TelemetryPoint) => number | undefined }>,
): { x: number[]; lines: ChartSeries[] } {
  const times = new Set<number>();
  for (const s of series) for (const p of s.points) if (p.time) times.add(timestampDate(p.time).getTime() / 1000);
  const x = [...times].sort((a, b) => a - b);
  const index = new Map(x.map((t, i) => [t, i]));
  const lines: ChartSeries[] = [];
  series.forEach((s, i) => {
    const name = series.length > 1 || metrics.length === 1 ? ` ${s.gpuIndex}${s.attemptId ? ` (${s.attemptId.slice(-6)})` : ""}` : "";
    metrics.forEach((m, j) => {
      const values: Array<number | null> = new Array(x.length).fill(null);
      for (const p of s.points) {
        const v = p.time ? m.pick(p) : undefined;
        if (v !== undefined) values[index.get(timestampDate(p.time!).getTime() / 1000)!] = v;
      }
      lines.push({ label: `${m.label}${name}`, scale: m.scale, color: COLORS[(i * metrics.length + j) % COLORS.length]!, values });
    });
  });
  return { x, lines };
}
