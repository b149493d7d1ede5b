// The parser against every capture in the shared corpus of real nvidia-smi
// output (../shared/fixtures/nvidia-smi, see its SOURCES.md and FIELDS.md).
//
// Which captures are GPU-query CSV, the format the worker reads:
// - in the capture bundles (files with "# $ nvidia-smi …" section headers), the
//   sections whose command has `--query-gpu=`. The `--query-compute-apps=`,
//   `--query-accounted-apps=` and `--query-retired-pages=` sections are CSV too
//   but describe processes and pages, not GPUs: they, and every other section
//   (-q text, tables, -L, help, topo, pmon, dmon), must be refused as BAD_OUTPUT;
// - standalone files whose first line is a CSV header of query fields (the .csv
//   files and nvidia_gpu_exporter's query.txt). None of them has all four
//   identity columns, so each must be read row by row (parseGpuQueryRows) and
//   refused by parseGpuQueryCsv with a message naming the missing columns;
// - every other file (XML, -q text, tables, -L, help, empty) must be refused.
//
// Values are cross-checked against an independent split of the raw CSV: a
// "no value" token must come out absent, anything else as the same number.

import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";

import { describe, expect, it } from "vitest";

import { GpuReadError, type GpuReading } from "../../../worker/gpu/gpu-reader.js";
import { parseGpuQueryCsv, parseGpuQueryRows, type GpuQueryRow } from "../../../worker/gpu/parse-query-csv.js";
import { corpusDir } from "./fixture-paths.js";

const MIB = 1_048_576;
const T = 1_750_000_000_000;

interface Section {
  /** "<file>:<line of the command>" */
  readonly where: string;
  /** The command after "# $ ". */
  readonly command: string;
  /** The output, with nvidia-smi's final newline (or "" when it printed nothing). */
  readonly output: string;
}

interface CsvFile {
  readonly where: string;
  readonly output: string;
}

function walk(dir: string): string[] {
  return readdirSync(dir)
    .sort()
    .flatMap((name) => {
      const path = join(dir, name);
      return statSync(path).isDirectory() ? walk(path) : [path];
    });
}

const isBundle = (text: string): boolean => /^# \$ nvidia-smi/m.test(text);

/** Splits a capture bundle on its "# $ nvidia-smi …" headers; each section runs to the next "####" rule. */
function splitBundle(file: string, text: string): Section[] {
  const lines = text.split("\n");
  const sections: Section[] = [];
  for (const [i, line] of lines.entries()) {
    if (!line.startsWith("# $ nvidia-smi")) continue;
    expect(lines[i + 1], `${file}:${i + 2} should be the rule under the command`).toMatch(/^#{20,}$/);
    const body: string[] = [];
    for (let j = i + 2; j < lines.length && !(lines[j] ?? "").startsWith("#####"); j++) body.push(lines[j] ?? "");
    const output = body.join("\n").replace(/\s+$/, "");
    sections.push({ where: `${file}:${i + 1}`, command: line.slice("# $ ".length), output: output === "" ? "" : `${output}\n` });
  }
  return sections;
}

// The test's own, independent reading of the corpus cells.
const NOT_REPORTED = /^(\[[^\]]*\]|N\/A|ERR!|Requested functionality has been deprecated|)$/;
const HEADER_LINE = /^[A-Za-z0-9_.]+( \[[^\]]+\])?(, [A-Za-z0-9_.]+( \[[^\]]+\])?)*\s*$/;

/** Header column → where its value must land in a GpuQueryRow, and how the raw cell converts. */
const COLUMNS: Readonly<Record<string, { key: keyof GpuQueryRow; scale?: number; text?: true }>> = {
  index: { key: "index" },
  uuid: { key: "uuid", text: true },
  name: { key: "name", text: true },
  "memory.total [MiB]": { key: "memoryTotalBytes", scale: MIB },
  "memory.used [MiB]": { key: "memoryUsedBytes", scale: MIB },
  driver_version: { key: "driverVersion", text: true },
  "pci.bus_id": { key: "pciBusId", text: true },
  "utilization.gpu [%]": { key: "utilizationPercent" },
  "utilization.memory [%]": { key: "memoryUtilizationPercent" },
  "temperature.gpu": { key: "temperatureCelsius" },
  "power.draw [W]": { key: "powerDrawWatts" },
  "power.limit [W]": { key: "powerLimitWatts" },
  "clocks.current.sm [MHz]": { key: "smClockMhz" },
  "clocks.current.memory [MHz]": { key: "memoryClockMhz" },
  "ecc.errors.corrected.volatile.total": { key: "eccCorrectedErrors" },
  "ecc.errors.uncorrected.volatile.total": { key: "eccUncorrectedErrors" },
  "fan.speed [%]": { key: "fanSpeedPercent" },
  pstate: { key: "pstate", text: true },
};

/** Checks every known cell of the raw CSV against the parsed rows; returns how many cells were checked. */
function crossCheck(where: string, output: string, rows: readonly GpuQueryRow[]): number {
  const [header = "", ...data] = output.split("\n").filter((line) => line.trim() !== "");
  const names = header.trimEnd().split(", ");
  expect(rows, where).toHaveLength(data.length);
  let checked = 0;
  for (const [r, line] of data.entries()) {
    const cells = line.split(", ");
    const row = rows[r] ?? {};
    for (const [c, name] of names.entries()) {
      const column = COLUMNS[name];
      if (column === undefined) continue;
      const cell = (cells[c] ?? "").trim();
      const at = `${where} row ${r + 1} ${name} = ${JSON.stringify(cell)}`;
      checked++;
      if (NOT_REPORTED.test(cell)) {
        expect(column.key in row, `${at} must be absent`).toBe(false);
      } else if (column.text) {
        expect(row[column.key], at).toBe(cell);
      } else {
        expect(row[column.key], at).toBe(Number(cell.replace(/ (MiB|%|W|MHz)$/, "")) * (column.scale ?? 1));
      }
    }
    if (names.includes("mig.mode.current")) {
      const cell = (cells[names.indexOf("mig.mode.current")] ?? "").trim();
      expect(row.migEnabled, `${where} mig.mode.current = ${cell}`).toBe(cell === "Enabled" ? true : cell === "Disabled" ? false : undefined);
    }
  }
  return checked;
}

/** What the worker would get from `--format=csv,nounits`: the units stripped from the values, the header kept. */
function toNoUnits(output: string): string {
  const [header = "", ...rest] = output.split("\n");
  return [header, ...rest.map((line) => line.split(", ").map((cell) => cell.replace(/^(-?[\d.]+) (MiB|%|W|MHz|ms)$/, "$1")).join(", "))].join("\n");
}

/** Sanity of a reading: finite numbers, physical ranges, one sample per GPU. */
function checkInvariants(where: string, reading: GpuReading): void {
  expect(reading.gpus.length, where).toBeGreaterThan(0);
  expect(reading.samples.map((s) => s.uuid), where).toStrictEqual(reading.gpus.map((g) => g.uuid));
  for (const value of [...reading.gpus, ...reading.samples].flatMap((o) => Object.values(o))) {
    if (typeof value === "number") expect(Number.isFinite(value), `${where}: ${value}`).toBe(true);
    expect(value, where).not.toBeUndefined();
  }
  for (const gpu of reading.gpus) {
    expect(gpu.memoryTotalBytes % MIB, where).toBe(0);
    expect(gpu.memoryTotalBytes, where).toBeGreaterThan(0);
    expect(gpu.uuid, where).toMatch(/^GPU-/);
    expect(gpu.simulated, where).toBe(false);
  }
  for (const s of reading.samples) {
    if (s.memoryUsedBytes !== undefined) expect(s.memoryUsedBytes, where).toBeLessThanOrEqual(s.memoryTotalBytes ?? 0);
    if (s.temperatureCelsius !== undefined) expect(s.temperatureCelsius, where).toBeGreaterThan(0);
    if (s.temperatureCelsius !== undefined) expect(s.temperatureCelsius, where).toBeLessThan(110);
    for (const percent of [s.utilizationPercent, s.memoryUtilizationPercent]) {
      if (percent !== undefined) expect(percent, where).toBeGreaterThanOrEqual(0);
      if (percent !== undefined) expect(percent, where).toBeLessThanOrEqual(100);
    }
    if (s.powerDrawWatts !== undefined && s.powerLimitWatts !== undefined) {
      expect(s.powerDrawWatts, where).toBeLessThanOrEqual(s.powerLimitWatts * 1.2);
    }
    if (s.pstate !== undefined) expect(s.pstate, where).toMatch(/^P\d+$/);
  }
}

function expectRefused(where: string, fn: () => unknown): GpuReadError {
  let thrown: unknown;
  try {
    fn();
  } catch (error) {
    thrown = error;
  }
  expect(thrown, `${where} must be refused`).toBeInstanceOf(GpuReadError);
  expect((thrown as GpuReadError).code, where).toBe("BAD_OUTPUT");
  return thrown as GpuReadError;
}

// Only where the corpus is present (always on CI): no skipped tests elsewhere, just fewer.
if (existsSync(corpusDir)) describe("the shared corpus of real nvidia-smi captures", () => {
  const files = existsSync(corpusDir) ? walk(corpusDir).filter((path) => !path.endsWith(".md")) : [];
  const gpuSections: Section[] = [];
  const otherSections: Section[] = [];
  const csvFiles: CsvFile[] = [];
  const otherFiles: CsvFile[] = [];
  for (const path of files) {
    const text = readFileSync(path, "utf8");
    const file = relative(corpusDir, path);
    if (isBundle(text)) {
      for (const section of splitBundle(file, text)) {
        (/ --query-gpu=/.test(section.command) ? gpuSections : otherSections).push(section);
      }
    } else if (HEADER_LINE.test(text.split("\n")[0] ?? "") && text.includes(", ")) {
      csvFiles.push({ where: file, output: text });
    } else {
      otherFiles.push({ where: file, output: text });
    }
  }
  const section = (file: string, nth: 0 | 1): Section => {
    const found = gpuSections.filter((s) => s.where.startsWith(`nvidia_gpu_exporter/internal/captures/${file}:`))[nth];
    expect(found, `query-gpu section ${nth} of ${file}`).toBeDefined();
    return found as Section;
  };
  const parse = (s: Section): GpuReading => parseGpuQueryCsv(s.output, T);

  it("has the captures this test knows", () => {
    // 7 bundles × (idle, load); 3 standalone CSVs. More is fine; fewer means files went missing.
    expect(gpuSections.length).toBeGreaterThanOrEqual(14);
    expect(csvFiles.length).toBeGreaterThanOrEqual(3);
    expect(otherSections.filter((s) => / --query-(compute-apps|accounted-apps|retired-pages)=/.test(s.command)).length).toBeGreaterThanOrEqual(42);
    expect(otherFiles.length).toBeGreaterThanOrEqual(30);
  });

  it("reads every --query-gpu section, cell for cell, with and without units", () => {
    let cells = 0;
    for (const s of gpuSections) {
      const reading = parse(s);
      checkInvariants(s.where, reading);
      cells += crossCheck(s.where, s.output, parseGpuQueryRows(s.output));
      expect(parseGpuQueryCsv(toNoUnits(s.output), T), `${s.where} (nounits)`).toStrictEqual(reading);
      expect(parseGpuQueryCsv(s.output.replaceAll("\n", "\r\n"), T), `${s.where} (CRLF)`).toStrictEqual(reading);
    }
    // 18 known columns in each of the 14 one-GPU sections.
    expect(cells).toBeGreaterThanOrEqual(14 * 18);
  });

  it("reads the H100 (idle and under load) exactly", () => {
    const idle = parse(section("linux-x86_64__nvidia-h100-80gb-hbm3__590.48.01.txt", 0));
    expect(idle.gpus).toStrictEqual([
      {
        index: 0,
        uuid: "GPU-00000000-0000-0000-0000-000000000000",
        model: "NVIDIA H100 80GB HBM3",
        memoryTotalBytes: 85_520_809_984,
        driverVersion: "590.48.01",
        pciBusId: "00000000:00:09.0",
        migEnabled: false,
        simulated: false,
      },
    ]);
    expect(idle.samples[0]).toStrictEqual({
      index: 0,
      uuid: "GPU-00000000-0000-0000-0000-000000000000",
      timeMs: T,
      utilizationPercent: 0,
      memoryUtilizationPercent: 0,
      memoryUsedBytes: 0,
      memoryTotalBytes: 81559 * MIB,
      temperatureCelsius: 41,
      powerDrawWatts: 69.85,
      powerLimitWatts: 700,
      smClockMhz: 345,
      memoryClockMhz: 2619,
      eccCorrectedErrors: 0,
      eccUncorrectedErrors: 0,
      pstate: "P0",
    });
    const load = parse(section("linux-x86_64__nvidia-h100-80gb-hbm3__590.48.01.txt", 1));
    expect(load.samples[0]).toMatchObject({
      utilizationPercent: 100,
      memoryUtilizationPercent: 11,
      memoryUsedBytes: 19818 * MIB,
      temperatureCelsius: 59,
      powerDrawWatts: 631.95,
      smClockMhz: 1980,
    });
    // The H100 has no fan reading: [N/A], so absent.
    expect("fanSpeedPercent" in (load.samples[0] ?? {})).toBe(false);
  });

  it("reads the H100 in MIG mode: utilization absent, GPU marked", () => {
    for (const nth of [0, 1] as const) {
      const reading = parse(section("linux-x86_64__nvidia-h100-mig__590.48.01.txt", nth));
      expect(reading.gpus[0]?.migEnabled).toBe(true);
      const sample = reading.samples[0] ?? {};
      expect("utilizationPercent" in sample).toBe(false);
      expect("memoryUtilizationPercent" in sample).toBe(false);
      expect(sample).toMatchObject({ memoryTotalBytes: 85_520_809_984, pstate: "P0", eccCorrectedErrors: 0 });
    }
    const idle = parse(section("linux-x86_64__nvidia-h100-mig__590.48.01.txt", 0)).samples[0];
    expect(idle).toMatchObject({ memoryUsedBytes: 59 * MIB, temperatureCelsius: 42, powerDrawWatts: 71.15 });
  });

  it("reads the RTX 2080 SUPER on Linux and Windows", () => {
    const linux = parse(section("linux-x86_64__nvidia-geforce-rtx-2080-super__595.71.05.txt", 0));
    expect(linux.gpus[0]).toStrictEqual({
      index: 0,
      uuid: "GPU-00000000-0000-0000-0000-000000000000",
      model: "NVIDIA GeForce RTX 2080 SUPER",
      memoryTotalBytes: 8192 * MIB,
      driverVersion: "595.71.05",
      pciBusId: "00000000:0C:00.0",
      migEnabled: false,
      simulated: false,
    });
    expect(linux.samples[0]).toStrictEqual({
      index: 0,
      uuid: "GPU-00000000-0000-0000-0000-000000000000",
      timeMs: T,
      utilizationPercent: 0,
      memoryUtilizationPercent: 9,
      memoryUsedBytes: 214 * MIB,
      memoryTotalBytes: 8192 * MIB,
      temperatureCelsius: 40,
      powerDrawWatts: 39.32,
      powerLimitWatts: 250,
      smClockMhz: 765,
      memoryClockMhz: 810,
      fanSpeedPercent: 38,
      pstate: "P8",
    });
    const windows = parse(section("windows-x86_64__nvidia-geforce-rtx-2080-super__610.62.txt", 1));
    expect(windows.gpus[0]).toMatchObject({ driverVersion: "610.62", migEnabled: false });
    expect(windows.samples[0]).toMatchObject({ memoryUsedBytes: 1366 * MIB, powerDrawWatts: 97.99, smClockMhz: 2040, pstate: "P2" });
    // GeForce has no ECC: [N/A] in both counters, so absent rather than 0.
    expect("eccCorrectedErrors" in (windows.samples[0] ?? {})).toBe(false);
    expect("eccUncorrectedErrors" in (windows.samples[0] ?? {})).toBe(false);
  });

  it("reads the RTX 4080 SUPER's 0 % fan as 0, not absent", () => {
    const idle = parse(section("linux-x86_64__nvidia-geforce-rtx-4080-super__595.71.05.txt", 0));
    expect(idle.samples[0]).toMatchObject({ fanSpeedPercent: 0, memoryTotalBytes: 16376 * MIB, powerLimitWatts: 320 });
  });

  it("reads the standalone CSVs row by row and refuses them as a whole GPU query", () => {
    for (const { where, output } of csvFiles) {
      const rows = parseGpuQueryRows(output);
      crossCheck(where, output, rows);
      const header = output.split("\n")[0] ?? "";
      const missing = ["index", "uuid", "name", "memory.total"].filter((f) => !header.split(", ").some((c) => c === f || c.startsWith(`${f} [`)));
      expect(missing.length, `${where} has every identity column; assert its values here`).toBeGreaterThan(0);
      const error = expectRefused(where, () => parseGpuQueryCsv(output, T));
      expect(error.message).toContain(`no ${missing.join(", ")} column`);
    }
    const a0s2 = csvFiles.find((f) => f.where.endsWith("nvidia-smi-2.csv"));
    expect(parseGpuQueryRows(a0s2?.output ?? "")[1]).toMatchObject({
      uuid: "GPU-68988cf6-8de9-6585-a263-d2e3ea96b75a",
      fanSpeedPercent: 81,
      powerDrawWatts: 187.04,
      memoryUsedBytes: 586 * MIB,
      memoryTotalBytes: 4043 * MIB,
      smClockMhz: 1453,
      memoryClockMhz: 3004,
    });
    const query = csvFiles.find((f) => f.where.endsWith("exporter/testdata/query.txt"));
    expect(parseGpuQueryRows(query?.output ?? "")).toMatchObject([
      { index: 0, name: "NVIDIA GeForce RTX 2080 SUPER", driverVersion: "466.63", fanSpeedPercent: 38, memoryUsedBytes: 575 * MIB, pciBusId: "00000000:01:00.0" },
      { index: 1, name: "Some Other GPU", driverVersion: "123.45", fanSpeedPercent: 50, memoryUsedBytes: 1234 * MIB },
    ]);
  });

  it("refuses every section that is not a --query-gpu answer", () => {
    for (const s of otherSections) expectRefused(`${s.where} (${s.command.slice(0, 60)})`, () => parseGpuQueryCsv(s.output, T));
  });

  it("refuses every file in another format (XML, -q text, tables, -L, help, empty)", () => {
    for (const f of otherFiles) expectRefused(f.where, () => parseGpuQueryCsv(f.output, T));
  });
});
