import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DEFAULT_URL, credentialsPath, resolveClientConfig } from "../../cli/config.js";
import { UsageError } from "../../cli/errors.js";

let cwd: string;
beforeEach(() => {
  cwd = mkdtempSync(join(tmpdir(), "ngpu-config-"));
});
afterEach(() => rmSync(cwd, { recursive: true, force: true }));

function writeCredentials(dataDir: string, value: unknown): void {
  mkdirSync(join(cwd, dataDir), { recursive: true });
  writeFileSync(join(cwd, dataDir, "credentials.json"), typeof value === "string" ? value : JSON.stringify(value));
}

describe("resolveClientConfig", () => {
  it("prefers flags, then the environment", () => {
    writeCredentials(".ngpu", { url: "http://file:1", apiKey: "file-key" });
    const env = { NGPU_URL: "http://env:2", NGPU_API_KEY: "env-key" };
    expect(resolveClientConfig({ url: "http://flag:3", apiKey: "flag-key" }, env, cwd)).toEqual({ url: "http://flag:3", apiKey: "flag-key" });
    expect(resolveClientConfig({}, env, cwd)).toEqual({ url: "http://env:2", apiKey: "env-key" });
  });

  it("falls back to the credentials file in ./.ngpu or $NGPU_DATA_DIR", () => {
    writeCredentials(".ngpu", { url: "http://file:1", apiKey: "file-key" });
    expect(resolveClientConfig({}, {}, cwd)).toEqual({ url: "http://file:1", apiKey: "file-key" });
    writeCredentials("other", { apiKey: "other-key" });
    expect(resolveClientConfig({}, { NGPU_DATA_DIR: "other" }, cwd)).toEqual({ url: DEFAULT_URL, apiKey: "other-key" });
    expect(credentialsPath({ NGPU_DATA_DIR: "/abs/dir" }, cwd)).toBe("/abs/dir/credentials.json");
  });

  it("says how to get a key when there is none", () => {
    expect(() => resolveClientConfig({}, {}, cwd)).toThrow(UsageError);
    expect(() => resolveClientConfig({ apiKey: "  " }, { NGPU_API_KEY: "" }, cwd)).toThrow(/no API key configured[\s\S]*--api-key[\s\S]*NGPU_API_KEY[\s\S]*ngpu dev/);
  });

  it("reports a broken credentials file or URL", () => {
    writeCredentials(".ngpu", "{nope");
    expect(() => resolveClientConfig({}, {}, cwd)).toThrow(/credentials\.json is not valid JSON/);
    expect(() => resolveClientConfig({ apiKey: "k", url: "localhost:7700" }, {}, cwd)).toThrow(/--url\/NGPU_URL: "localhost:7700" is not an http/);
  });
});
