import { create, type DescField, type DescMessage, type JsonValue, ScalarType, toBinary, toJson } from "@bufbuild/protobuf";

/** A small seeded PRNG (mulberry32): the same seed gives the same cases on every run. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface Fuzzer {
  int(max: number): number;
  pick<T>(items: readonly T[]): T;
  bytes(max: number): Uint8Array;
  /** A message of this type with random, often hostile, field values. */
  message(desc: DescMessage): Uint8Array;
  /** The same as JSON (canonical names), possibly with wrong types. */
  json(desc: DescMessage): JsonValue;
  /** Flips, cuts, repeats or inserts bytes. */
  mutateBytes(bytes: Uint8Array): Uint8Array;
  /** Cuts or inserts characters in JSON text. */
  mutateText(text: string): string;
}

const STRINGS = ["", "a", "echo", "sleep", "x".repeat(300), "ü🚀", "\u0000", "\ud800", "node_01h0000000000000000000000", "task_00000000000000000000000000", "key_00000000000000000000000000", "https://example.com/hook", "http://127.0.0.1:1/", "-1", "{}", "a".repeat(70_000)];
const INT64 = [0n, 1n, -1n, 1000n, 86_400_000n, 2n ** 31n, 2n ** 53n + 1n, 2n ** 63n - 1n, -(2n ** 63n)];
const UINT64 = [0n, 1n, 1000n, 3_600_001n, 2n ** 53n + 1n, 2n ** 64n - 1n];
const INT32 = [0, 1, -1, 5, 100, 1001, 2 ** 31 - 1, -(2 ** 31)];
const UINT32 = [0, 1, 5, 100, 501, 1025, 2 ** 32 - 1];
const DOUBLES = [0, -0, 1.5, -1, 1e308, Number.NaN, Number.POSITIVE_INFINITY];

export function createFuzzer(seed: number): Fuzzer {
  const rand = seededRandom(seed);
  const int = (max: number) => Math.floor(rand() * max);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
  const bytes = (max: number) => {
    const out = new Uint8Array(int(max + 1));
    for (let i = 0; i < out.length; i++) out[i] = int(256);
    return out;
  };

  function scalar(type: ScalarType): unknown {
    switch (type) {
      case ScalarType.STRING:
        return pick(STRINGS);
      case ScalarType.BYTES:
        return bytes(48);
      case ScalarType.BOOL:
        return rand() < 0.5;
      case ScalarType.DOUBLE:
      case ScalarType.FLOAT:
        return pick(DOUBLES);
      case ScalarType.INT64:
      case ScalarType.SINT64:
      case ScalarType.SFIXED64:
        return pick(INT64);
      case ScalarType.UINT64:
      case ScalarType.FIXED64:
        return pick(UINT64);
      case ScalarType.UINT32:
      case ScalarType.FIXED32:
        return pick(UINT32);
      default:
        return pick(INT32);
    }
  }

  function value(field: DescField, depth: number): unknown {
    switch (field.fieldKind) {
      case "scalar":
        return scalar(field.scalar);
      case "enum":
        return rand() < 0.8 ? pick(field.enum.values).number : int(100);
      case "message":
        return init(field.message, depth + 1);
      case "list": {
        const n = int(4);
        const items: unknown[] = [];
        for (let i = 0; i < n; i++) {
          items.push(field.listKind === "scalar" ? scalar(field.scalar) : field.listKind === "enum" ? int(5) : init(field.message, depth + 1));
        }
        return items;
      }
      case "map": {
        const entries: Record<string, unknown> = {};
        for (let i = int(3); i > 0; i--) {
          const k = String(field.mapKey === ScalarType.STRING ? pick(STRINGS).slice(0, 40) : int(10));
          entries[k] = field.mapKind === "scalar" ? scalar(field.scalar) : field.mapKind === "enum" ? int(5) : init(field.message, depth + 1);
        }
        return entries;
      }
    }
  }

  function init(desc: DescMessage, depth: number): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    if (depth > 4) return out;
    for (const member of desc.members) {
      if (rand() < 0.35) continue;
      if (member.kind === "oneof") {
        const field = pick(member.fields);
        out[member.localName] = { case: field.localName, value: value(field, depth) };
      } else {
        out[member.localName] = value(member, depth);
      }
    }
    return out;
  }

  function build(desc: DescMessage) {
    // Some combinations cannot be built (e.g. an invalid UTF-16 string in a map key): fall back to empty.
    try {
      return create(desc, init(desc, 0) as never);
    } catch {
      return create(desc);
    }
  }

  function randomJson(depth: number): JsonValue {
    const r = int(8);
    if (depth > 3 || r < 2) return pick<JsonValue>([null, true, 0, -1, 1e300, "x", "", "2026-13-45T99:00:00Z", "\u0000"]);
    if (r < 4) return Array.from({ length: int(3) }, () => randomJson(depth + 1));
    const o: Record<string, JsonValue> = {};
    for (let i = int(3); i > 0; i--) o[pick(["a", "task", "app", "input", "unknownField", "__proto__", "pageSize"])] = randomJson(depth + 1);
    return o;
  }

  return {
    int,
    pick,
    bytes,
    message(desc) {
      try {
        return toBinary(desc, build(desc));
      } catch {
        return new Uint8Array();
      }
    },
    json(desc) {
      let doc: JsonValue;
      try {
        doc = toJson(desc, build(desc));
      } catch {
        doc = {};
      }
      if (doc !== null && typeof doc === "object" && !Array.isArray(doc) && rand() < 0.5) {
        const keys = Object.keys(doc);
        // A field with a value of the wrong kind, or an unknown field.
        const key = keys.length > 0 && rand() < 0.7 ? pick(keys) : "notAField";
        doc[key] = randomJson(0);
      }
      return rand() < 0.1 ? randomJson(0) : doc;
    },
    mutateBytes(input) {
      const out = Array.from(input);
      for (let n = 1 + int(4); n > 0; n--) {
        const op = int(5);
        const at = int(out.length + 1);
        if (op === 0 && out.length > 0) out[at % out.length] = int(256);
        else if (op === 1) out.splice(at, int(8));
        else if (op === 2) out.splice(at, 0, ...bytes(8));
        else if (op === 3) out.length = Math.min(out.length, at);
        else out.splice(at, 0, pick([0x0a, 0x12, 0x08, 0xff, 0x80]), pick([0xff, 0x7f, 0x80, 0x01]));
      }
      return new Uint8Array(out);
    },
    mutateText(text) {
      let t = text;
      for (let n = 1 + int(3); n > 0; n--) {
        const at = int(t.length + 1);
        const op = int(3);
        if (op === 0) t = t.slice(0, at);
        else if (op === 1) t = t.slice(0, at) + pick(["{", "}", "[", "\"", ",", ":", "\\", "\u0000", "9e999", "null"]) + t.slice(at);
        else t = t.slice(0, at) + t.slice(at + 1 + int(4));
      }
      return t;
    },
  };
}
