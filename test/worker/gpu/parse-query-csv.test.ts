import { readFileSync } from "node:fs";

import { describe, expect, it } from "vitest";

import { GpuReadError } from "../../../worker/gpu/gpu-reader.js";
import {
  BYTES_PER_MIB,
  GPU_QUERY_FIELDS,
  isNotReported,
  parseGpuQueryCsv,
  parseGpuQueryRows,
} from "../../../worker/gpu/parse-query-csv.js";
import { ownFixture } from "./fixture-paths.js";

const T = 1_750_000_000_000;
const read = (name: string): string => readFileSync(ownFixture(name), "utf8");

/** Calls fn, expects a BAD_OUTPUT GpuReadError whose message has every fragment. */
function expectBadOutput(fn: () => unknown, ...fragments: string[]): GpuReadError {
  let thrown: unknown;
  try {
    fn();
  } catch (error) {
    thrown = error;
  }
  expect(thrown).toBeInstanceOf(GpuReadError);
  const error = thrown as GpuReadError;
  expect(error.code).toBe("BAD_OUTPUT");
  expect(error.name).toBe("GpuReadError");
  for (const fragment of fragments) expect(error.message).toContain(fragment);
  return error;
}

/** The CSV with one cell replaced; `column` is the header cell's field name. */
function withCell(csv: string, column: string, value: string, row = 0): string {
  const lines = csv.split("\n");
  const header = (lines[0] ?? "").split(", ");
  const position = header.findIndex((cell) => cell === column || cell.startsWith(`${column} [`));
  expect(position).toBeGreaterThanOrEqual(0);
  const cells = (lines[row + 1] ?? "").split(", ");
  cells[position] = value;
  lines[row + 1] = cells.join(", ");
  return lines.join("\n");
}

/** The CSV without one column. */
function withoutColumn(csv: string, column: string): string {
  const lines = csv.split("\n");
  const header = (lines[0] ?? "").split(", ");
  const position = header.findIndex((cell) => cell === column || cell.startsWith(`${column} [`));
  expect(position).toBeGreaterThanOrEqual(0);
  return lines.map((line) => (line === "" ? line : line.split(", ").filter((_, i) => i !== position).join(", "))).join("\n");
}

describe("parseGpuQueryCsv on our own fixtures", () => {
  it("reads two RTX 3090s with units in the values", () => {
    const reading = parseGpuQueryCsv(read("rtx3090-x2.csv"), T);
    expect(reading.gpus).toStrictEqual([
      {
        index: 0,
        uuid: "GPU-3f2a9c1e-7b4d-4e8a-9c6f-1a2b3c4d5e6f",
        model: "NVIDIA GeForce RTX 3090",
        memoryTotalBytes: 24576 * BYTES_PER_MIB,
        driverVersion: "550.54.15",
        pciBusId: "00000000:01:00.0",
        migEnabled: false,
        simulated: false,
      },
      {
        index: 1,
        uuid: "GPU-8e7d6c5b-4a39-4281-b7f6-e5d4c3b2a190",
        model: "NVIDIA GeForce RTX 3090",
        memoryTotalBytes: 25_769_803_776,
        driverVersion: "550.54.15",
        pciBusId: "00000000:02:00.0",
        migEnabled: false,
        simulated: false,
      },
    ]);
    // toStrictEqual: the [N/A] ECC counters must be absent keys, not undefined or 0.
    expect(reading.samples).toStrictEqual([
      {
        index: 0,
        uuid: "GPU-3f2a9c1e-7b4d-4e8a-9c6f-1a2b3c4d5e6f",
        timeMs: T,
        utilizationPercent: 98,
        memoryUtilizationPercent: 61,
        memoryUsedBytes: 18230 * BYTES_PER_MIB,
        memoryTotalBytes: 24576 * BYTES_PER_MIB,
        temperatureCelsius: 71,
        powerDrawWatts: 341.27,
        powerLimitWatts: 350,
        smClockMhz: 1905,
        memoryClockMhz: 9751,
        fanSpeedPercent: 72,
        pstate: "P2",
      },
      {
        index: 1,
        uuid: "GPU-8e7d6c5b-4a39-4281-b7f6-e5d4c3b2a190",
        timeMs: T,
        utilizationPercent: 0,
        memoryUtilizationPercent: 0,
        memoryUsedBytes: BYTES_PER_MIB,
        memoryTotalBytes: 24576 * BYTES_PER_MIB,
        temperatureCelsius: 34,
        powerDrawWatts: 21.63,
        powerLimitWatts: 350,
        smClockMhz: 210,
        memoryClockMhz: 405,
        fanSpeedPercent: 30,
        pstate: "P8",
      },
    ]);
    expect("eccCorrectedErrors" in (reading.samples[0] ?? {})).toBe(false);
  });

  it("reads --format=csv,nounits exactly as --format=csv", () => {
    expect(parseGpuQueryCsv(read("rtx3090-x2-nounits.csv"), T)).toStrictEqual(parseGpuQueryCsv(read("rtx3090-x2.csv"), T));
  });

  it("reads Windows line endings, blank lines and any column order the same", () => {
    const csv = read("rtx3090-x2.csv");
    const expected = parseGpuQueryCsv(csv, T);
    expect(parseGpuQueryCsv(csv.replaceAll("\n", "\r\n"), T)).toStrictEqual(expected);
    expect(parseGpuQueryCsv(`\n${csv}\n\n`, T)).toStrictEqual(expected);
    const lines = csv.trimEnd().split("\n").map((line) => line.split(", ").reverse().join(", "));
    expect(parseGpuQueryCsv(`${lines.join("\n")}\n`, T)).toStrictEqual(expected);
  });

  it("ignores columns it does not know", () => {
    const csv = read("rtx3090-x2.csv")
      .split("\n")
      .map((line, i) => (line === "" ? line : `${i === 0 ? "timestamp, vbios_version" : "2026/07/14 08:12:38.696, 94.02.42.00.A9"}, ${line}`))
      .join("\n");
    expect(parseGpuQueryCsv(csv, T)).toStrictEqual(parseGpuQueryCsv(read("rtx3090-x2.csv"), T));
  });

  it("marks a MIG GPU and leaves its utilization absent", () => {
    const { gpus, samples } = parseGpuQueryCsv(read("a100-mig-nounits.csv"), T);
    expect(gpus.map((gpu) => gpu.migEnabled)).toStrictEqual([true, false]);
    expect(gpus[0]?.memoryTotalBytes).toBe(81920 * BYTES_PER_MIB);
    const [mig, whole] = samples;
    expect(mig).toBeDefined();
    expect("utilizationPercent" in (mig ?? {})).toBe(false);
    expect("memoryUtilizationPercent" in (mig ?? {})).toBe(false);
    expect("fanSpeedPercent" in (mig ?? {})).toBe(false);
    expect(mig).toMatchObject({ memoryUsedBytes: 24576 * BYTES_PER_MIB, temperatureCelsius: 38, powerDrawWatts: 118.4, eccCorrectedErrors: 0 });
    // Zero is a reading, not an absence.
    expect(whole).toMatchObject({ utilizationPercent: 0, memoryUtilizationPercent: 0, eccUncorrectedErrors: 0 });
  });

  it("leaves [Not Supported] power and an [Unknown Error] fan absent", () => {
    const { gpus, samples } = parseGpuQueryCsv(read("gtx1050ti-power-not-supported-nounits.csv"), T);
    expect(gpus[0]).toMatchObject({ model: "GeForce GTX 1050 Ti", memoryTotalBytes: 4040 * BYTES_PER_MIB, migEnabled: false });
    expect(samples[0]).toStrictEqual({
      index: 0,
      uuid: "GPU-1c2d3e4f-5a6b-7c8d-9e0f-a1b2c3d4e5f6",
      timeMs: T,
      utilizationPercent: 3,
      memoryUtilizationPercent: 1,
      memoryUsedBytes: 312 * BYTES_PER_MIB,
      memoryTotalBytes: 4040 * BYTES_PER_MIB,
      temperatureCelsius: 41,
      smClockMhz: 1290,
      memoryClockMhz: 3504,
      pstate: "P0",
    });
  });

  it("reads a query without the optional mig.mode.current column", () => {
    const { gpus } = parseGpuQueryCsv(read("gtx1050ti-no-mig-field-nounits.csv"), T);
    expect(gpus[0]?.migEnabled).toBe(false);
  });

  it("returns an empty reading for a header without rows", () => {
    expect(parseGpuQueryCsv(read("header-only.csv"), T)).toStrictEqual({ gpus: [], samples: [] });
  });

  it.each([
    "[N/A]",
    "N/A",
    "[Not Supported]",
    "[Unknown Error]",
    "[Insufficient Permissions]",
    "ERR!",
    "[Requested functionality has been deprecated]",
    "Requested functionality has been deprecated",
    "[Function Not Found]",
    "",
  ])("reads %j in a telemetry field as absent", (token) => {
    const csv = withCell(withCell(read("rtx3090-x2.csv"), "power.draw", token), "temperature.gpu", token);
    const sample = parseGpuQueryCsv(csv, T).samples[0] ?? {};
    expect("powerDrawWatts" in sample).toBe(false);
    expect("temperatureCelsius" in sample).toBe(false);
    expect(isNotReported(token)).toBe(true);
  });

  it("keeps a negative temperature", () => {
    const csv = withCell(read("rtx3090-x2.csv"), "temperature.gpu", "-5");
    expect(parseGpuQueryCsv(csv, T).samples[0]?.temperatureCelsius).toBe(-5);
  });
});

describe("parseGpuQueryCsv refuses what it cannot read", () => {
  const csv = read("rtx3090-x2.csv");

  it.each([
    ["power.draw", "abc W"],
    ["power.draw", "12,5 W"],
    ["fan.speed", "[GPU is lost]"],
    ["utilization.gpu", "-3 %"],
    ["memory.used", "1.5 MiB"],
    ["memory.used", "18 GiB"],
    ["clocks.current.sm", "1905 kHz"],
    ["ecc.errors.corrected.volatile.total", "many"],
    ["temperature.gpu", "NaN"],
    ["pstate", "Q2"],
    ["mig.mode.current", "Maybe"],
    ["pci.bus_id", "bus one"],
  ])("a %s of %j, naming the field and the value", (field, value) => {
    expectBadOutput(() => parseGpuQueryCsv(withCell(csv, field, value), T), field, value);
  });

  it.each([
    ["index", "[N/A]"],
    ["index", "first"],
    ["uuid", "[N/A]"],
    ["uuid", "3f2a9c1e"],
    ["name", "[N/A]"],
    ["name", ""],
    ["memory.total", "[N/A]"],
    ["memory.total", "0 MiB"],
  ])("an identity field %s of %j", (field, value) => {
    expectBadOutput(() => parseGpuQueryCsv(withCell(csv, field, value, 1), T), "row 2");
  });

  it.each(["index", "uuid", "name", "memory.total"])("a CSV without the %s column", (column) => {
    expectBadOutput(() => parseGpuQueryCsv(withoutColumn(csv, column), T), `no ${column} column`);
  });

  it("a header giving memory in another unit", () => {
    const other = csv.replace("memory.used [MiB]", "memory.used [GiB]");
    expectBadOutput(() => parseGpuQueryCsv(other, T), "memory.used", "[GiB]");
  });

  it("two rows for the same GPU", () => {
    const lines = csv.split("\n");
    const doubled = [lines[0], lines[1], lines[1]?.replace(/^0, /, "1, "), ""].join("\n");
    expectBadOutput(() => parseGpuQueryCsv(doubled, T), "two rows have uuid");
    expectBadOutput(() => parseGpuQueryCsv(withCell(csv, "index", "0", 1), T), "two rows have index 0");
  });

  it("the driver's error text printed with exit 0", () => {
    expectBadOutput(() => parseGpuQueryCsv(read("driver-not-loaded.txt"), T), "couldn't communicate with the NVIDIA driver");
  });

  it.each([
    ["empty output", ""],
    ["whitespace", " \n\n"],
    ["a sentence", "hello, world\n"],
    ["XML", '<?xml version="1.0" ?>\n<nvidia_smi_log></nvidia_smi_log>\n'],
    ["a CSV of other fields", "timestamp, gpu_name, gpu_uuid, pid, used_gpu_memory [MiB]\n"],
    ["a header with a duplicated column", "index, uuid, name, memory.total [MiB], index\n"],
  ])("%s", (_, output) => {
    expectBadOutput(() => parseGpuQueryCsv(output, T), "nvidia-smi printed unexpected output");
  });

  it("output cut off in the middle of a row", () => {
    expectBadOutput(() => parseGpuQueryCsv(read("rtx3090-x2-truncated.csv"), T), "truncated");
  });

  it("output cut off inside the last value (no final newline)", () => {
    // "P8" cut to "P": the row still has every column, but no newline ends it.
    expectBadOutput(() => parseGpuQueryCsv(csv.trimEnd().slice(0, -1), T), "truncated");
  });

  it("a row with fewer values than the header", () => {
    const lines = csv.split("\n");
    const short = [lines[0], lines[1], lines[2]?.split(", ").slice(0, 10).join(", "), ""].join("\n");
    expectBadOutput(() => parseGpuQueryCsv(short, T), "row 2 has 10 values but the header has 19 columns");
  });

  it("a row with a comma-space inside a value", () => {
    expectBadOutput(() => parseGpuQueryCsv(withCell(csv, "name", "NVIDIA GeForce RTX 3090, Founders Edition"), T), "row 1 has 20 values");
  });
});

describe("parseGpuQueryRows", () => {
  it("reads whatever known columns a CSV has, leaving the rest absent", () => {
    const csv = "uuid, memory.used [MiB], utilization.gpu [%], temperature.gpu, power.draw [W], clocks.sm [MHz]\n" +
      "GPU-d86c351b-8f94-33ab-3b97-accb421fef6d, 754 MiB, 100 %, 71, 217.24 W, 1949 MHz\n";
    expect(parseGpuQueryRows(csv)).toStrictEqual([
      {
        uuid: "GPU-d86c351b-8f94-33ab-3b97-accb421fef6d",
        memoryUsedBytes: 754 * BYTES_PER_MIB,
        utilizationPercent: 100,
        temperatureCelsius: 71,
        powerDrawWatts: 217.24,
        smClockMhz: 1949,
      },
    ]);
  });

  it("gives every queried field a place in the row", () => {
    const row = parseGpuQueryRows(read("rtx3090-x2-nounits.csv"))[0] ?? {};
    // 19 queried fields; absent here: mig.mode.current and the two ECC counters ([N/A] on GeForce).
    expect(GPU_QUERY_FIELDS).toHaveLength(19);
    expect(Object.keys(row)).toHaveLength(GPU_QUERY_FIELDS.length - 3);
  });
});
