// Made-up GPUs for `--simulate-gpu`, so a worker can join and run tasks on a
// machine without NVIDIA hardware (development, CI, demos). The reader has the
// same interface as the nvidia-smi one; its telemetry follows a busy flag the
// runtime sets, moving halfway towards a busy or idle target on each read, with
// a little seeded jitter: plausible to look at, and the same on every run.

import type { GpuInfo, GpuReader, GpuReading, GpuSample } from "./gpu-reader.js";

const BYTES_PER_MIB = 1_048_576;
const MEMORY_UNITS: ReadonlyMap<string, number> = new Map([
  ["tib", 2 ** 40],
  ["gib", 2 ** 30],
  ["mib", 2 ** 20],
  ["tb", 1e12],
  ["gb", 1e9],
  ["mb", 1e6],
]);
/** Most GPUs one spec may simulate. */
export const MAX_SIMULATED_GPUS = 64;

/** A parsed `--simulate-gpu` spec. */
export interface SimulatedGpuSpec {
  /** Product name reported for every simulated GPU, e.g. "NVIDIA GeForce RTX 3090". */
  readonly model: string;
  /** Memory of each GPU in bytes, a whole number of MiB (as nvidia-smi reports). */
  readonly memoryBytes: number;
  /** Number of GPUs, 1 to MAX_SIMULATED_GPUS. */
  readonly count: number;
}

/**
 * Parses a `--simulate-gpu` spec, `model:memory[:count]`, e.g.
 * "NVIDIA GeForce RTX 3090:24GiB" or "NVIDIA H100 80GB HBM3:80GiB:8".
 * Memory takes a unit: GiB, MiB, TiB (binary) or GB, MB, TB (decimal: 24GB is
 * 24×10⁹ bytes), any case; it is rounded to a whole MiB. Count defaults to 1.
 *
 * @throws RangeError naming the part of the spec that is wrong.
 */
export function parseSimulatedGpuSpec(spec: string): SimulatedGpuSpec {
  function fail(why: string): never {
    throw new RangeError(`invalid simulated GPU spec "${spec}": ${why} (expected model:memory[:count], e.g. "NVIDIA GeForce RTX 3090:24GiB:2")`);
  }
  const parts = spec.split(":").map((part) => part.trim());
  if (parts.length < 2 || parts.length > 3) {
    fail(`it has ${parts.length} ":"-separated part${parts.length === 1 ? "" : "s"}`);
  }
  const [model = "", memory = "", countText] = parts;
  if (model === "") fail("the model is empty");

  const memoryMatch = /^(\d+(?:\.\d+)?)\s*([A-Za-z]+)$/.exec(memory);
  if (!memoryMatch) {
    fail(`memory "${memory}" is not a number with a unit such as GiB, GB or MiB`);
  }
  const [, amountText = "", unitText = ""] = memoryMatch;
  const unitBytes = MEMORY_UNITS.get(unitText.toLowerCase());
  if (unitBytes === undefined) fail(`memory "${memory}" has unit "${unitText}"; use GiB, GB, MiB, MB, TiB or TB`);
  const memoryBytes = Math.round((Number(amountText) * unitBytes) / BYTES_PER_MIB) * BYTES_PER_MIB;
  if (memoryBytes < BYTES_PER_MIB) fail(`memory "${memory}" is less than 1 MiB`);

  let count = 1;
  if (countText !== undefined) {
    if (!/^\d+$/.test(countText)) fail(`count "${countText}" is not a whole number`);
    count = Number(countText);
    if (count < 1 || count > MAX_SIMULATED_GPUS) fail(`count ${count} is not between 1 and ${MAX_SIMULATED_GPUS}`);
  }
  return { model, memoryBytes, count };
}

/** Options of createSimulatedGpuReader. */
export interface SimulatedGpuReaderOptions {
  /** Node name, used in UUIDs ("GPU-sim-<node>-<index>") and to seed the jitter. Default "local". */
  readonly node?: string;
  /** Clock for sample times, in milliseconds since the Unix epoch. Default Date.now. */
  readonly now?: () => number;
}

/** A GpuReader over simulated GPUs, whose load the caller drives. */
export interface SimulatedGpuReader extends GpuReader {
  /**
   * Marks a GPU busy (a task runs on it) or idle; later reads move its
   * utilization, memory used, temperature, power and clocks towards that state.
   * @throws RangeError for an index that is not one of the simulated GPUs.
   */
  setBusy(index: number, busy: boolean): void;
}

interface Profile {
  readonly powerLimitWatts: number;
  /** Datacenter parts: HBM memory clock, ECC counters, no fan reading. */
  readonly datacenter: boolean;
}

// Rough board power limits, so the simulated numbers look like the model's.
const PROFILES: readonly (readonly [RegExp, Profile])[] = [
  [/\b(H100|H200|H800|B200|GH200)\b/i, { powerLimitWatts: 700, datacenter: true }],
  [/\b(A100|A800)\b/i, { powerLimitWatts: 400, datacenter: true }],
  [/\b(L40S?|L4|A10G?|A40|T4|V100)\b/i, { powerLimitWatts: 300, datacenter: true }],
  [/\b4090\b/, { powerLimitWatts: 450, datacenter: false }],
  [/\b(3090|4080)\b/, { powerLimitWatts: 350, datacenter: false }],
];
const DEFAULT_PROFILE: Profile = { powerLimitWatts: 250, datacenter: false };

interface State {
  busy: boolean;
  utilizationPercent: number;
  memoryUtilizationPercent: number;
  memoryUsedBytes: number;
  temperatureCelsius: number;
  powerDrawWatts: number;
  fanSpeedPercent: number;
  readonly random: () => number;
}

/**
 * Creates a reader over `spec.count` simulated GPUs (`simulated: true`, UUIDs
 * "GPU-sim-<node>-<index>"). Every read advances each GPU one step towards its
 * busy or idle target; for the same node name and the same sequence of reads
 * and setBusy calls, the readings are the same.
 *
 * @param spec a parsed spec, or the `--simulate-gpu` string (parsed with parseSimulatedGpuSpec).
 * @throws RangeError when the spec is invalid.
 */
export function createSimulatedGpuReader(
  spec: SimulatedGpuSpec | string,
  options: SimulatedGpuReaderOptions = {},
): SimulatedGpuReader {
  const { model, memoryBytes, count } = typeof spec === "string" ? parseSimulatedGpuSpec(spec) : spec;
  const node = options.node ?? "local";
  const now = options.now ?? Date.now;
  const profile = PROFILES.find(([pattern]) => pattern.test(model))?.[1] ?? DEFAULT_PROFILE;
  const idleMemoryBytes = roundToMib(memoryBytes * 0.01);

  const gpus: GpuInfo[] = [];
  const states: State[] = [];
  for (let index = 0; index < count; index++) {
    gpus.push({
      index,
      uuid: `GPU-sim-${node}-${index}`,
      model,
      memoryTotalBytes: memoryBytes,
      pciBusId: `00000000:${(index + 1).toString(16).toUpperCase().padStart(2, "0")}:00.0`,
      migEnabled: false,
      simulated: true,
    });
    states.push({
      busy: false,
      utilizationPercent: 0,
      memoryUtilizationPercent: 0,
      memoryUsedBytes: idleMemoryBytes,
      temperatureCelsius: 32,
      powerDrawWatts: profile.powerLimitWatts * 0.08,
      fanSpeedPercent: 30,
      random: mulberry32(fnv1a(`${node}/${index}`)),
    });
  }

  function step(state: State): void {
    const busy = state.busy;
    // Symmetric jitter in [-amplitude, amplitude].
    const jitter = (amplitude: number): number => (state.random() * 2 - 1) * amplitude;
    const toward = (from: number, target: number): number => from + (target - from) / 2;
    state.utilizationPercent = clamp(toward(state.utilizationPercent, busy ? 97 : 0) + jitter(2), 0, 100);
    state.memoryUtilizationPercent = clamp(toward(state.memoryUtilizationPercent, busy ? 55 : 0) + jitter(2), 0, 100);
    state.memoryUsedBytes = clamp(
      toward(state.memoryUsedBytes, busy ? memoryBytes * 0.7 : idleMemoryBytes),
      idleMemoryBytes,
      memoryBytes,
    );
    state.temperatureCelsius = toward(state.temperatureCelsius, busy ? 74 : 33) + jitter(0.5);
    state.powerDrawWatts = clamp(
      toward(state.powerDrawWatts, profile.powerLimitWatts * (busy ? 0.9 : 0.08)) + jitter(profile.powerLimitWatts * 0.01),
      0,
      profile.powerLimitWatts,
    );
    state.fanSpeedPercent = toward(state.fanSpeedPercent, busy ? 75 : 30);
  }

  function sample(gpu: GpuInfo, state: State, timeMs: number): GpuSample {
    const busy = state.busy;
    return {
      index: gpu.index,
      uuid: gpu.uuid,
      timeMs,
      utilizationPercent: Math.round(state.utilizationPercent),
      memoryUtilizationPercent: Math.round(state.memoryUtilizationPercent),
      memoryUsedBytes: roundToMib(state.memoryUsedBytes),
      memoryTotalBytes: memoryBytes,
      temperatureCelsius: Math.round(state.temperatureCelsius),
      powerDrawWatts: Math.round(state.powerDrawWatts * 100) / 100,
      powerLimitWatts: profile.powerLimitWatts,
      smClockMhz: busy ? 1_980 : 345,
      memoryClockMhz: profile.datacenter ? 2_619 : busy ? 9_751 : 405,
      pstate: busy ? "P2" : "P8",
      ...(profile.datacenter
        ? { eccCorrectedErrors: 0, eccUncorrectedErrors: 0 }
        : { fanSpeedPercent: Math.round(state.fanSpeedPercent) }),
    };
  }

  return {
    read(signal?: AbortSignal): Promise<GpuReading> {
      if (signal?.aborted) return Promise.reject(signal.reason);
      const timeMs = now();
      const samples = gpus.map((gpu, i) => {
        const state = states[i];
        if (state === undefined) throw new Error("unreachable: one state per GPU");
        step(state);
        return sample(gpu, state, timeMs);
      });
      return Promise.resolve({ gpus, samples });
    },
    setBusy(index: number, busy: boolean): void {
      const state = Number.isInteger(index) ? states[index] : undefined;
      if (state === undefined) {
        throw new RangeError(`no simulated GPU ${index}: indexes are 0 to ${count - 1}`);
      }
      state.busy = busy;
    },
  };
}

function roundToMib(bytes: number): number {
  return Math.round(bytes / BYTES_PER_MIB) * BYTES_PER_MIB;
}

function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value));
}

/** 32-bit FNV-1a hash of a string, to seed the jitter from the node name and index. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** Small seeded PRNG (mulberry32): returns numbers in [0, 1). */
function mulberry32(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}
