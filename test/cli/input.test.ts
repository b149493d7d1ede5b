import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { extensionForMimeType, mimeTypeForPath, parseDataUri, toDataUri } from "../../cli/data-uri.js";
import { buildTaskInput, parseInputValue } from "../../cli/input.js";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "ngpu-input-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("parseInputValue", () => {
  it.each([
    ["30", 30],
    ["1.5", 1.5],
    ["true", true],
    ["null", null],
    ['"30"', "30"],
    ["[1,2]", [1, 2]],
    ['{"a":1}', { a: 1 }],
    ["a cat", "a cat"],
    ["", ""],
    ["{not json", "{not json"],
  ])("%j → %j", (text, value) => {
    expect(parseInputValue(text)).toEqual(value);
  });
});

describe("buildTaskInput", () => {
  it("merges --input-json and --input, later keys winning", async () => {
    const input = await buildTaskInput({ inputJson: '{"prompt":"a dog","steps":10}', input: ["prompt=a cat", "seed=42", "seed=7"] });
    expect(input).toEqual({ prompt: "a cat", steps: 10, seed: 7 });
  });

  it("reads --input-json @file", async () => {
    const path = join(dir, "in.json");
    writeFileSync(path, '{"x":[1,2]}');
    expect(await buildTaskInput({ inputJson: `@${path}` })).toEqual({ x: [1, 2] });
  });

  it("sends k=@path as a data: URI with the type guessed from the extension", async () => {
    const path = join(dir, "photo.PNG");
    writeFileSync(path, Buffer.from([1, 2, 3]));
    const input = await buildTaskInput({ input: [`image=@${path}`, "email=@"] });
    expect(input["image"]).toBe("data:image/png;base64,AQID");
    expect(input["email"]).toBe("@"); // a lone @ is a plain string
  });

  it("explains bad input, naming the flag", async () => {
    await expect(buildTaskInput({ inputJson: "[1]" })).rejects.toThrow(/^--input-json: must be a JSON object/);
    await expect(buildTaskInput({ inputJson: "{oops" })).rejects.toThrow(/^--input-json: not valid JSON/);
    await expect(buildTaskInput({ input: ["novalue"] })).rejects.toThrow(/^--input: "novalue" is not of the form key=value/);
    await expect(buildTaskInput({ input: [`f=@${join(dir, "missing.png")}`] })).rejects.toThrow(/^--input: cannot read .*missing\.png \(ENOENT\)/);
  });
});

describe("data: URIs", () => {
  it("guesses MIME types and extensions", () => {
    expect(mimeTypeForPath("a/b/c.jpeg")).toBe("image/jpeg");
    expect(mimeTypeForPath("song.MP3")).toBe("audio/mpeg");
    expect(mimeTypeForPath("weights")).toBe("application/octet-stream");
    expect(extensionForMimeType("image/jpeg")).toBe("jpg");
    expect(extensionForMimeType("text/plain;charset=utf-8")).toBe("txt");
    expect(extensionForMimeType("application/x-unknown")).toBe("bin");
  });

  it("round-trips base64 and decodes percent-encoded URIs", () => {
    const bytes = Buffer.from("héllo");
    expect(parseDataUri(toDataUri(bytes, "text/plain"))).toEqual({ mimeType: "text/plain", bytes });
    expect(parseDataUri("data:,a%20b")).toEqual({ mimeType: "text/plain", bytes: Buffer.from("a b") });
    expect(parseDataUri("data:Image/PNG;name=x.png;base64,AQID")?.mimeType).toBe("image/png");
    expect(parseDataUri("https://example.com/x.png")).toBeUndefined();
    expect(parseDataUri("data:,%E0%A4%A")).toBeUndefined();
  });
});
