import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { saveOutputFiles, summarizeDataUris } from "../../cli/output-files.js";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "ngpu-out-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const png = "data:image/png;base64,AQID";
const wav = "data:audio/wav;base64,BAUG";

describe("saveOutputFiles", () => {
  it("saves a single data: URI output as output.<ext>", async () => {
    const outDir = join(dir, "new", "nested");
    const { files, output } = await saveOutputFiles(png, outDir);
    expect(files).toEqual([{ path: join(outDir, "output.png"), jsonPath: "", mimeType: "image/png", sizeBytes: 3 }]);
    expect(output).toBe(join(outDir, "output.png"));
    expect([...readFileSync(join(outDir, "output.png"))]).toEqual([1, 2, 3]);
  });

  it("names files after their place in arrays and objects, and leaves other values alone", async () => {
    const { files, output } = await saveOutputFiles(
      { images: [png, png], audio: { track: wav }, caption: "a cat", seed: 42, none: null, "bad/name": png },
      dir,
    );
    expect(files.map((f) => [f.jsonPath, f.path.slice(dir.length + 1)])).toEqual([
      ["images[0]", "images-0.png"],
      ["images[1]", "images-1.png"],
      ["audio.track", "audio-track.wav"],
      ["bad/name", "bad_name.png"],
    ]);
    expect(output).toEqual({
      images: [join(dir, "images-0.png"), join(dir, "images-1.png")],
      audio: { track: join(dir, "audio-track.wav") },
      caption: "a cat",
      seed: 42,
      none: null,
      "bad/name": join(dir, "bad_name.png"),
    });
    expect(readdirSync(dir).sort()).toEqual(["audio-track.wav", "bad_name.png", "images-0.png", "images-1.png"]);
  });

  it("numbers names that would clash, and names top-level array items after baseName", async () => {
    const { files } = await saveOutputFiles([png, { "0": png }, png], dir, "result");
    expect(files.map((f) => f.path.slice(dir.length + 1))).toEqual(["result-0.png", "result-1-0.png", "result-2.png"]);
    const clash = await saveOutputFiles({ "a-b": png, a: { b: png } }, join(dir, "clash"));
    expect(clash.files.map((f) => f.path.slice(dir.length + 7))).toEqual(["a-b.png", "a-b-2.png"]);
  });

  it("writes nothing (not even the directory) when there is no data: URI", async () => {
    const outDir = join(dir, "untouched");
    const { files, output } = await saveOutputFiles({ text: "hello" }, outDir);
    expect(files).toEqual([]);
    expect(output).toEqual({ text: "hello" });
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe("summarizeDataUris", () => {
  it("shortens long data: URIs only", () => {
    const long = `data:image/png;base64,${Buffer.alloc(300).toString("base64")}`;
    expect(summarizeDataUris({ a: [long], b: "short", c: "x".repeat(200) })).toEqual({
      a: ["<image/png, 300 bytes; save with --output-dir>"],
      b: "short",
      c: "x".repeat(200),
    });
  });
});
