import { describe, expect, it } from "vitest";

import type { GpuSample } from "../../../worker/gpu/gpu-reader.js";
import { createSimulatedGpuReader, parseSimulatedGpuSpec } from "../../../worker/gpu/simulated-gpu.js";

const MIB = 1_048_576;
const GIB = 1_073_741_824;

describe("parseSimulatedGpuSpec", () => {
  it.each([
    ["NVIDIA GeForce RTX 3090:24GiB", { model: "NVIDIA GeForce RTX 3090", memoryBytes: 24 * GIB, count: 1 }],
    ["NVIDIA H100 80GB HBM3:80GiB:8", { model: "NVIDIA H100 80GB HBM3", memoryBytes: 80 * GIB, count: 8 }],
    ["Tiny:512MiB:2", { model: "Tiny", memoryBytes: 512 * MIB, count: 2 }],
    [" NVIDIA L4 : 24 gib : 4 ", { model: "NVIDIA L4", memoryBytes: 24 * GIB, count: 4 }],
    // Decimal units are decimal, rounded to a whole MiB: 24×10⁹ bytes is 22888.18 MiB.
    ["NVIDIA GeForce RTX 4090:24GB", { model: "NVIDIA GeForce RTX 4090", memoryBytes: 22888 * MIB, count: 1 }],
    ["Half:1.5GiB", { model: "Half", memoryBytes: 1536 * MIB, count: 1 }],
  ])("reads %j", (spec, expected) => {
    expect(parseSimulatedGpuSpec(spec)).toStrictEqual(expected);
  });

  it.each([
    ["", "1 \":\"-separated part"],
    ["NVIDIA GeForce RTX 3090", "1 \":\"-separated part"],
    ["A:24GiB:2:3", "4 \":\"-separated parts"],
    [":24GiB", "the model is empty"],
    ["RTX:", 'memory ""'],
    ["RTX:24", 'memory "24" is not a number with a unit'],
    ["RTX:GiB", 'memory "GiB"'],
    ["RTX:-1GiB", 'memory "-1GiB"'],
    ["RTX:24XB", 'unit "XB"'],
    ["RTX:0GiB", 'memory "0GiB" is less than 1 MiB'],
    ["RTX:24GiB:0", "count 0 is not between 1 and 64"],
    ["RTX:24GiB:65", "count 65"],
    ["RTX:24GiB:two", 'count "two" is not a whole number'],
    ["RTX:24GiB:", 'count "" is not a whole number'],
  ])("refuses %j, naming the bad part", (spec, fragment) => {
    expect(() => parseSimulatedGpuSpec(spec)).toThrow(RangeError);
    expect(() => parseSimulatedGpuSpec(spec)).toThrow(fragment);
    expect(() => parseSimulatedGpuSpec(spec)).toThrow(`"${spec}"`);
  });
});

describe("createSimulatedGpuReader", () => {
  const clock = (): (() => number) => {
    let t = 1_000;
    return () => (t += 1_000);
  };

  it("declares the simulated GPUs", async () => {
    const reader = createSimulatedGpuReader("NVIDIA H100 80GB HBM3:80GiB:2", { node: "lab-7", now: () => 42 });
    const { gpus, samples } = await reader.read();
    expect(gpus).toStrictEqual([
      { index: 0, uuid: "GPU-sim-lab-7-0", model: "NVIDIA H100 80GB HBM3", memoryTotalBytes: 80 * GIB, pciBusId: "00000000:01:00.0", migEnabled: false, simulated: true },
      { index: 1, uuid: "GPU-sim-lab-7-1", model: "NVIDIA H100 80GB HBM3", memoryTotalBytes: 80 * GIB, pciBusId: "00000000:02:00.0", migEnabled: false, simulated: true },
    ]);
    expect(samples.map((s) => [s.index, s.uuid, s.timeMs])).toStrictEqual([
      [0, "GPU-sim-lab-7-0", 42],
      [1, "GPU-sim-lab-7-1", 42],
    ]);
    // A datacenter part: ECC counters, no fan; a GeForce: a fan, no ECC.
    expect(samples[0]).toMatchObject({ eccCorrectedErrors: 0, powerLimitWatts: 700, pstate: "P8" });
    expect("fanSpeedPercent" in (samples[0] ?? {})).toBe(false);
    const geforce = (await createSimulatedGpuReader("NVIDIA GeForce RTX 3090:24GiB").read()).samples[0] ?? {};
    expect("eccCorrectedErrors" in geforce).toBe(false);
    expect(geforce).toMatchObject({ powerLimitWatts: 350, uuid: "GPU-sim-local-0" });
  });

  it("is deterministic for the same node and the same calls", async () => {
    const run = async (): Promise<GpuSample[][]> => {
      const reader = createSimulatedGpuReader("NVIDIA GeForce RTX 3090:24GiB:2", { node: "n1", now: clock() });
      const readings: GpuSample[][] = [];
      for (let i = 0; i < 10; i++) {
        if (i === 3) reader.setBusy(1, true);
        readings.push([...(await reader.read()).samples]);
      }
      return readings;
    };
    expect(await run()).toStrictEqual(await run());
  });

  it("moves the telemetry of a busy GPU up, and back down when idle", async () => {
    const reader = createSimulatedGpuReader("NVIDIA GeForce RTX 3090:24GiB:2", { node: "n1", now: clock() });
    const idle = (await reader.read()).samples;
    reader.setBusy(0, true);
    let busy = idle;
    for (let i = 0; i < 4; i++) busy = (await reader.read()).samples;
    const [before, after, neighbour] = [idle[0], busy[0], busy[1]];
    expect(before?.utilizationPercent).toBeLessThanOrEqual(5);
    expect(after?.utilizationPercent).toBeGreaterThan(80);
    expect(after?.memoryUsedBytes).toBeGreaterThan((before?.memoryUsedBytes ?? 0) + 10 * GIB);
    expect(after?.temperatureCelsius).toBeGreaterThan((before?.temperatureCelsius ?? 0) + 20);
    expect(after?.powerDrawWatts).toBeGreaterThan((before?.powerDrawWatts ?? 0) * 5);
    expect(after).toMatchObject({ pstate: "P2", smClockMhz: 1980 });
    // The other GPU stays idle.
    expect(neighbour?.utilizationPercent).toBeLessThanOrEqual(5);

    reader.setBusy(0, false);
    let cooled = busy;
    for (let i = 0; i < 8; i++) cooled = (await reader.read()).samples;
    expect(cooled[0]?.utilizationPercent).toBeLessThanOrEqual(5);
    expect(cooled[0]?.memoryUsedBytes).toBeLessThan(GIB);
  });

  it("keeps every value in range over a long run", async () => {
    const reader = createSimulatedGpuReader("NVIDIA A100-SXM4-80GB:80GiB:4", { node: "range" });
    for (let i = 0; i < 200; i++) {
      reader.setBusy(i % 4, i % 7 < 3);
      for (const s of (await reader.read()).samples) {
        for (const value of Object.values(s)) if (typeof value === "number") expect(Number.isFinite(value)).toBe(true);
        expect(s.utilizationPercent).toBeGreaterThanOrEqual(0);
        expect(s.utilizationPercent).toBeLessThanOrEqual(100);
        expect(s.memoryUsedBytes).toBeLessThanOrEqual(s.memoryTotalBytes ?? 0);
        expect((s.memoryUsedBytes ?? 0) % MIB).toBe(0);
        expect(s.powerDrawWatts).toBeLessThanOrEqual(s.powerLimitWatts ?? 0);
        expect(s.powerDrawWatts).toBeGreaterThanOrEqual(0);
      }
    }
  });

  it("refuses an unknown GPU index and honours an aborted signal", async () => {
    const reader = createSimulatedGpuReader({ model: "X", memoryBytes: GIB, count: 2 });
    expect(() => reader.setBusy(2, true)).toThrow("no simulated GPU 2: indexes are 0 to 1");
    expect(() => reader.setBusy(0.5, true)).toThrow(RangeError);
    const reason = new Error("stop");
    await expect(reader.read(AbortSignal.abort(reason))).rejects.toBe(reason);
  });

  it("refuses an invalid spec string", () => {
    expect(() => createSimulatedGpuReader("RTX:24")).toThrow(RangeError);
  });
});
