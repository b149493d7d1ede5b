// Pure parsing of `nvidia-smi --query-gpu=… --format=csv[,nounits]` output.
//
// The output is header-driven: columns are found by name, so extra columns
// (other queries, newer drivers) and missing optional ones are fine, and both
// `--format=csv` ("81559 MiB") and `--format=csv,nounits` ("81559") parse the
// same. nvidia-smi does not quote fields; it separates them with ", ".
//
// Strictness is the point: anything that is not the expected CSV throws
// BAD_OUTPUT instead of producing numbers that could be wrong. The only
// leniency is for the tokens nvidia-smi prints when it has no value
// ("[N/A]", "[Not Supported]", …), which become absent fields.

import { GpuReadError, type GpuInfo, type GpuReading, type GpuSample } from "./gpu-reader.js";

/** Bytes in a MiB, the unit nvidia-smi reports memory in. */
export const BYTES_PER_MIB = 1_048_576;

/**
 * The fields the worker queries, in order (`--query-gpu=` joined with ",").
 * Canonical names, because the CSV header echoes them.
 */
export const GPU_QUERY_FIELDS: readonly string[] = [
  "index",
  "uuid",
  "name",
  "memory.total",
  "memory.used",
  "driver_version",
  "pci.bus_id",
  "mig.mode.current",
  "utilization.gpu",
  "utilization.memory",
  "temperature.gpu",
  "power.draw",
  "power.limit",
  "clocks.current.sm",
  "clocks.current.memory",
  "ecc.errors.corrected.volatile.total",
  "ecc.errors.uncorrected.volatile.total",
  "fan.speed",
  "pstate",
];

/** Fields without which a row cannot describe a GPU; the query must never drop them. */
export const REQUIRED_GPU_QUERY_FIELDS: readonly string[] = ["index", "uuid", "name", "memory.total"];

// What nvidia-smi prints in place of a value it cannot give, with or without
// brackets depending on field and driver (see shared/fixtures/nvidia-smi/FIELDS.md).
// Compared case-insensitively with the brackets removed.
const NOT_REPORTED_TOKENS: ReadonlySet<string> = new Set(
  [
    "",
    "N/A",
    "Not Supported",
    "Unknown Error",
    "Insufficient Permissions",
    "Requested functionality has been deprecated",
    "Function Not Found",
    "Not available in WDDM driver model",
    "ERR!",
  ].map((token) => token.toLowerCase()),
);

/** True when a CSV cell is one of nvidia-smi's "no value" tokens (`[N/A]`, `[Not Supported]`, `ERR!`, empty, …). */
export function isNotReported(cell: string): boolean {
  const bare = cell.trim().replace(/^\[(.*)\]$/s, "$1").trim();
  return NOT_REPORTED_TOKENS.has(bare.toLowerCase());
}

/**
 * One CSV row as read, before it is required to describe a whole GPU.
 * Fields whose column is missing, or whose value was not reported, are absent.
 * Units are already converted: bytes, percent, °C, watts, MHz.
 */
export interface GpuQueryRow {
  index?: number;
  uuid?: string;
  name?: string;
  memoryTotalBytes?: number;
  memoryUsedBytes?: number;
  driverVersion?: string;
  pciBusId?: string;
  /** From mig.mode.current: true for "Enabled", false for "Disabled"; absent on GPUs without MIG. */
  migEnabled?: boolean;
  utilizationPercent?: number;
  memoryUtilizationPercent?: number;
  temperatureCelsius?: number;
  powerDrawWatts?: number;
  powerLimitWatts?: number;
  smClockMhz?: number;
  memoryClockMhz?: number;
  eccCorrectedErrors?: number;
  eccUncorrectedErrors?: number;
  fanSpeedPercent?: number;
  pstate?: string;
}

type NumericKey = {
  [K in keyof GpuQueryRow]-?: GpuQueryRow[K] extends number | undefined ? K : never;
}[keyof GpuQueryRow];

interface NumericColumn {
  readonly key: NumericKey;
  /** Unit in the header ("memory.total [MiB]") and after the value ("81559 MiB"); undefined: none. */
  readonly unit: string | undefined;
  /** Other spellings of the unit accepted as well. */
  readonly otherUnits?: readonly string[];
  /** Multiplier from the printed unit to ours (MiB → bytes). */
  readonly scale?: number;
  readonly integer: boolean;
  readonly allowNegative?: boolean;
}

const NUMERIC_COLUMNS: ReadonlyMap<string, NumericColumn> = new Map<string, NumericColumn>([
  ["index", { key: "index", unit: undefined, integer: true }],
  ["memory.total", { key: "memoryTotalBytes", unit: "MiB", scale: BYTES_PER_MIB, integer: true }],
  ["memory.used", { key: "memoryUsedBytes", unit: "MiB", scale: BYTES_PER_MIB, integer: true }],
  ["utilization.gpu", { key: "utilizationPercent", unit: "%", integer: false }],
  ["utilization.memory", { key: "memoryUtilizationPercent", unit: "%", integer: false }],
  // The header has no unit for temperature; "C" is accepted should a driver add one.
  ["temperature.gpu", { key: "temperatureCelsius", unit: undefined, otherUnits: ["C"], integer: false, allowNegative: true }],
  ["power.draw", { key: "powerDrawWatts", unit: "W", integer: false }],
  ["power.limit", { key: "powerLimitWatts", unit: "W", integer: false }],
  ["clocks.current.sm", { key: "smClockMhz", unit: "MHz", integer: true }],
  ["clocks.current.memory", { key: "memoryClockMhz", unit: "MHz", integer: true }],
  ["ecc.errors.corrected.volatile.total", { key: "eccCorrectedErrors", unit: undefined, integer: true }],
  ["ecc.errors.uncorrected.volatile.total", { key: "eccUncorrectedErrors", unit: undefined, integer: true }],
  ["fan.speed", { key: "fanSpeedPercent", unit: "%", integer: false }],
]);

// Aliases nvidia-smi accepts in --query-gpu; we query the canonical names but
// read either in a header.
const COLUMN_ALIASES: ReadonlyMap<string, string> = new Map([
  ["clocks.sm", "clocks.current.sm"],
  ["clocks.mem", "clocks.current.memory"],
]);

const TEXT_COLUMNS: ReadonlySet<string> = new Set([
  "uuid",
  "name",
  "driver_version",
  "pci.bus_id",
  "mig.mode.current",
  "pstate",
]);

// A header cell: field name, optionally followed by " [unit]".
const HEADER_CELL = /^([A-Za-z0-9_.]+)(?: \[([^\]]+)\])?$/;
// A value, optionally followed by its unit: "81559 MiB", "71.15 W", "42", "0 %".
const NUMBER_CELL = /^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(?: (\S+))?$/;
const UUID = /^(?:GPU|MIG)-\S+$/;
const PCI_BUS_ID = /^[0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-9A-Fa-f]$/;
const PSTATE = /^P\d{1,2}$/;
const SEPARATOR = ", ";

/** Characters of nvidia-smi's output quoted in error messages. */
const QUOTE_LIMIT = 300;

/** Collapses output to one line and caps its length, for error messages. */
export function quoteOutput(text: string, limit = QUOTE_LIMIT): string {
  const line = text.trim().replace(/\s*\r?\n\s*/g, " ");
  return line.length > limit ? `${line.slice(0, limit)}…` : line;
}

function badOutput(message: string): GpuReadError {
  return new GpuReadError("BAD_OUTPUT", `nvidia-smi printed unexpected output: ${message}`);
}

interface Column {
  readonly name: string;
  readonly unit: string | undefined;
  readonly position: number;
}

/**
 * The header line, parsed; throws BAD_OUTPUT when the first line is not a CSV
 * header, quoting the whole output (an error text printed in its place).
 */
function parseHeader(line: string, stdout: string): Column[] {
  const cells = line.trimEnd().split(SEPARATOR);
  const columns: Column[] = [];
  const seen = new Set<string>();
  for (const [position, cell] of cells.entries()) {
    const match = HEADER_CELL.exec(cell.trim());
    if (!match) {
      throw badOutput(`expected a CSV header of query fields, got "${quoteOutput(stdout)}"`);
    }
    const raw = match[1] ?? "";
    const name = COLUMN_ALIASES.get(raw) ?? raw;
    // Only a field we read is ambiguous when repeated; other columns are ignored anyway.
    const known = NUMERIC_COLUMNS.has(name) || TEXT_COLUMNS.has(name);
    if (known && seen.has(name)) {
      throw badOutput(`the CSV header names "${name}" twice`);
    }
    seen.add(name);
    columns.push({ name, unit: match[2], position });
  }
  return columns;
}

function parseNumber(column: Column, spec: NumericColumn, cell: string, rowNumber: number): number | undefined {
  if (isNotReported(cell)) return undefined;
  const where = `${column.name} in row ${rowNumber}`;
  const match = NUMBER_CELL.exec(cell);
  if (!match) {
    throw badOutput(`${where} is "${cell}", which is not a number`);
  }
  const unit = match[2];
  const accepted = [spec.unit, ...(spec.otherUnits ?? [])];
  if (unit !== undefined && !accepted.includes(unit)) {
    throw badOutput(`${where} is "${cell}"; expected the unit ${spec.unit ?? "none"}`);
  }
  const value = Number(match[1]);
  if (!Number.isFinite(value)) {
    throw badOutput(`${where} is "${cell}", which is not a finite number`);
  }
  if (spec.integer && !Number.isInteger(value)) {
    throw badOutput(`${where} is "${cell}"; expected a whole number`);
  }
  if (value < 0 && spec.allowNegative !== true) {
    throw badOutput(`${where} is "${cell}"; expected a number ≥ 0`);
  }
  // Memory: whole MiB, so the product is an exact whole number of bytes.
  return spec.scale === undefined ? value : Math.round(value * spec.scale);
}

function setText(row: GpuQueryRow, name: string, cell: string, rowNumber: number): void {
  const where = `${name} in row ${rowNumber}`;
  switch (name) {
    case "uuid":
      if (!UUID.test(cell)) throw badOutput(`${where} is "${cell}", not a GPU UUID`);
      row.uuid = cell;
      return;
    case "name":
      if (isNotReported(cell)) throw badOutput(`${where} is "${cell}"; the product name is required`);
      row.name = cell;
      return;
    case "driver_version":
      if (isNotReported(cell)) return;
      if (/\s/.test(cell)) throw badOutput(`${where} is "${cell}", not a driver version`);
      row.driverVersion = cell;
      return;
    case "pci.bus_id":
      if (isNotReported(cell)) return;
      if (!PCI_BUS_ID.test(cell)) throw badOutput(`${where} is "${cell}", not a PCI bus id`);
      row.pciBusId = cell;
      return;
    case "mig.mode.current":
      if (isNotReported(cell)) return;
      if (cell === "Enabled") row.migEnabled = true;
      else if (cell === "Disabled") row.migEnabled = false;
      else throw badOutput(`${where} is "${cell}"; expected Enabled or Disabled`);
      return;
    case "pstate":
      if (isNotReported(cell)) return;
      if (!PSTATE.test(cell)) throw badOutput(`${where} is "${cell}"; expected P0 to P15`);
      row.pstate = cell;
      return;
  }
}

interface QueryTable {
  /** Canonical names of the header's columns. */
  readonly columnNames: ReadonlySet<string>;
  readonly rows: GpuQueryRow[];
}

function parseTable(stdout: string): QueryTable {
  // Only "\r" is stripped from lines: a trailing ", " can be an empty last value.
  const lines = stdout
    .split("\n")
    .map((line) => line.replace(/\r$/, ""))
    .filter((line) => line.trim() !== "");
  const [headerLine, ...dataLines] = lines;
  if (headerLine === undefined) {
    throw badOutput("nothing at all (expected a CSV header and one row per GPU)");
  }
  const columns = parseHeader(headerLine, stdout);
  // nvidia-smi ends every line with a newline; without one the output was cut
  // off, possibly inside the last value ("P1" of "P12"), which would still parse.
  if (!/\n\s*$/.test(stdout)) {
    throw badOutput(`it ends in the middle of a line (truncated?): "${quoteOutput(lines[lines.length - 1] ?? "")}"`);
  }

  for (const column of columns) {
    const spec = NUMERIC_COLUMNS.get(column.name);
    if (spec === undefined || column.unit === undefined) continue;
    if (column.unit !== spec.unit && !(spec.otherUnits ?? []).includes(column.unit)) {
      const expected = spec.unit === undefined ? "no unit" : `[${spec.unit}]`;
      throw badOutput(`the header gives ${column.name} in [${column.unit}]; expected ${expected}`);
    }
  }
  const known = columns.filter((column) => NUMERIC_COLUMNS.has(column.name) || TEXT_COLUMNS.has(column.name));
  if (known.length === 0) {
    throw badOutput(`the CSV header names none of the GPU fields (${GPU_QUERY_FIELDS.join(", ")}): "${quoteOutput(headerLine)}"`);
  }

  const rows = dataLines.map((line, i) => {
    const rowNumber = i + 1;
    const cells = line.split(SEPARATOR).map((cell) => cell.trim());
    if (cells.length !== columns.length) {
      throw badOutput(
        `row ${rowNumber} has ${cells.length} values but the header has ${columns.length} columns (truncated output?): "${quoteOutput(line)}"`,
      );
    }
    const row: GpuQueryRow = {};
    for (const column of known) {
      const cell = cells[column.position] ?? "";
      const spec = NUMERIC_COLUMNS.get(column.name);
      if (spec === undefined) {
        setText(row, column.name, cell, rowNumber);
        continue;
      }
      if (column.name === "index" && isNotReported(cell)) {
        throw badOutput(`index in row ${rowNumber} is "${cell}"; the index is required`);
      }
      const value = parseNumber(column, spec, cell, rowNumber);
      if (value !== undefined) row[spec.key] = value;
    }
    return row;
  });
  return { columnNames: new Set(columns.map((column) => column.name)), rows };
}

/**
 * Parses `--query-gpu` CSV output into rows, leniently about which columns exist:
 * a known column that is missing leaves its field absent, unknown columns are
 * ignored. Values are parsed strictly: a known column holding anything other than
 * a value in the expected unit or a "not reported" token throws BAD_OUTPUT naming
 * the field and the value. Lines may end in "\n" or "\r\n"; blank lines are skipped.
 *
 * @param stdout the whole output of nvidia-smi, header line included.
 * @throws GpuReadError with code BAD_OUTPUT when the output is not such a CSV.
 */
export function parseGpuQueryRows(stdout: string): GpuQueryRow[] {
  return parseTable(stdout).rows;
}

/**
 * Parses the output of the worker's own query (GPU_QUERY_FIELDS) into inventory
 * and telemetry. On top of parseGpuQueryRows' checks, the header must have the
 * identity columns (index, uuid, name, memory.total), every row must report them,
 * and indexes and UUIDs must be unique. Zero rows (a header only) is a valid empty
 * reading: the caller decides whether that is NO_GPUS.
 *
 * @param stdout the whole output of `nvidia-smi --query-gpu=… --format=csv[,nounits]`.
 * @param timeMs the time of the reading, in milliseconds since the Unix epoch.
 * @throws GpuReadError with code BAD_OUTPUT.
 */
export function parseGpuQueryCsv(stdout: string, timeMs: number): GpuReading {
  const { columnNames, rows } = parseTable(stdout);
  const missing = REQUIRED_GPU_QUERY_FIELDS.filter((field) => !columnNames.has(field));
  if (missing.length > 0) {
    throw badOutput(`the CSV has no ${missing.join(", ")} column${missing.length > 1 ? "s" : ""}`);
  }

  const gpus: GpuInfo[] = [];
  const samples: GpuSample[] = [];
  const indexes = new Set<number>();
  const uuids = new Set<string>();
  for (const [i, row] of rows.entries()) {
    const { index, uuid, name, memoryTotalBytes } = row;
    // parseTable already rejects unreported index, uuid and name; memory.total
    // is the one identity field that can still be "[N/A]" here.
    if (index === undefined || uuid === undefined || name === undefined || memoryTotalBytes === undefined) {
      throw badOutput(`row ${i + 1} does not report memory.total; it is required`);
    }
    if (memoryTotalBytes === 0) {
      throw badOutput(`row ${i + 1} reports memory.total as 0`);
    }
    if (indexes.has(index)) throw badOutput(`two rows have index ${index}`);
    if (uuids.has(uuid)) throw badOutput(`two rows have uuid ${uuid}`);
    indexes.add(index);
    uuids.add(uuid);

    gpus.push({
      index,
      uuid,
      model: name,
      memoryTotalBytes,
      ...present("driverVersion", row.driverVersion),
      ...present("pciBusId", row.pciBusId),
      migEnabled: row.migEnabled === true,
      simulated: false,
    });
    samples.push({
      index,
      uuid,
      timeMs,
      ...present("utilizationPercent", row.utilizationPercent),
      ...present("memoryUtilizationPercent", row.memoryUtilizationPercent),
      ...present("memoryUsedBytes", row.memoryUsedBytes),
      ...present("memoryTotalBytes", memoryTotalBytes),
      ...present("temperatureCelsius", row.temperatureCelsius),
      ...present("powerDrawWatts", row.powerDrawWatts),
      ...present("powerLimitWatts", row.powerLimitWatts),
      ...present("smClockMhz", row.smClockMhz),
      ...present("memoryClockMhz", row.memoryClockMhz),
      ...present("eccCorrectedErrors", row.eccCorrectedErrors),
      ...present("eccUncorrectedErrors", row.eccUncorrectedErrors),
      ...present("fanSpeedPercent", row.fanSpeedPercent),
      ...present("pstate", row.pstate),
    });
  }
  return { gpus, samples };
}

/**
 * `{ [key]: value }`, or `{}` when the value is absent: spreads an optional field
 * without ever writing `undefined` (exactOptionalPropertyTypes; absent ≠ zero).
 */
function present<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return value === undefined ? {} : ({ [key]: value } as { [P in K]?: V });
}
