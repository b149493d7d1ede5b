import { describe, expect, it } from "vitest";
import {
  formatAge,
  formatBytes,
  formatCelsius,
  formatDuration,
  formatPercent,
  formatTable,
  formatTime,
  formatWatts,
} from "../../cli/format.js";

describe("formatBytes", () => {
  it.each([
    [0, "0 B"],
    [512, "512 B"],
    [1024, "1 KiB"],
    [1536, "1.5 KiB"],
    [24n << 30n, "24 GiB"],
    [(8n << 30n) + (300n << 20n), "8.3 GiB"],
    [5n << 50n, "5 PiB"],
    [undefined, "-"],
  ])("%s → %s", (bytes, text) => {
    expect(formatBytes(bytes)).toBe(text);
  });
});

describe("formatDuration", () => {
  it.each([
    [0, "0ms"],
    [850, "850ms"],
    [1_000, "1s"],
    [12_345, "12.3s"],
    [3_295, "3.3s"],
    [59_949, "59.9s"],
    [59_999, "1m00s"],
    [60_000, "1m00s"],
    [245_000, "4m05s"],
    [7_380_000, "2h03m"],
    [273_600_000, "3d04h"],
    [1500n, "1.5s"],
    [-2_000, "-2s"],
    [undefined, "-"],
  ])("%s ms → %s", (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });
});

describe("times", () => {
  const now = new Date("2024-05-01T12:00:00.000Z");
  it("formats a UTC time to the second", () => {
    expect(formatTime(new Date("2024-05-01T12:00:03.456Z"))).toBe("2024-05-01T12:00:03Z");
    expect(formatTime(undefined)).toBe("-");
  });
  it.each([
    ["2024-05-01T11:59:59.500Z", "just now"],
    ["2024-05-01T11:59:18Z", "42s ago"],
    ["2024-05-01T11:55:00Z", "5m ago"],
    ["2024-05-01T09:00:00Z", "3h ago"],
    ["2024-04-29T12:00:00Z", "2d ago"],
    ["2024-05-01T12:05:00Z", "in 5m"],
  ])("%s is %s", (iso, text) => {
    expect(formatAge(new Date(iso), now)).toBe(text);
  });
});

describe("readings", () => {
  it("rounds and marks missing values", () => {
    expect(formatPercent(41.6)).toBe("42%");
    expect(formatCelsius(60.4)).toBe("60°C");
    expect(formatWatts(199.5)).toBe("200 W");
    expect([formatPercent(undefined), formatCelsius(undefined), formatWatts(undefined)]).toEqual(["-", "-", "-"]);
  });
});

describe("formatTable", () => {
  it("aligns columns without trailing blanks", () => {
    const table = formatTable(
      ["ID", "NAME", "STATE"],
      [
        ["node-1", "a", "online"],
        ["n2", "longer name", ""],
        ["n3"],
      ],
    );
    expect(table.split("\n")).toEqual([
      "ID      NAME         STATE",
      "node-1  a            online",
      "n2      longer name",
      "n3",
    ]);
  });
});
