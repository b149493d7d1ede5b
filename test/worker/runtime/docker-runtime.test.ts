import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { buildDockerRunArgs, dockerAvailable } from "../../../worker/runtime/docker-runtime.js";

describe("buildDockerRunArgs", () => {
  it("pins the chosen GPUs, publishes on loopback and passes the app env", () => {
    const args = buildDockerRunArgs({
      image: "r8.im/acme/style@sha256:abc",
      name: "ngpu-test",
      hostPort: 41000,
      gpuIndices: [1, 3],
      env: { MODEL: "sketch", PORT: "1234" },
    });
    expect(args).toEqual([
      "run",
      "--rm",
      "-d",
      "--name",
      "ngpu-test",
      "--label",
      "ngpu.app-instance=1",
      "--gpus",
      '"device=1,3"',
      "-p",
      "127.0.0.1:41000:5000",
      "--add-host",
      "host.docker.internal:host-gateway",
      "-e",
      "MODEL=sketch",
      // The platform's PORT wins over the app's.
      "-e",
      "PORT=5000",
      "r8.im/acme/style@sha256:abc",
    ]);
    // Inside the container the GPUs are renumbered from 0; host indices must not leak in.
    expect(args.some((a) => a.startsWith("CUDA_VISIBLE_DEVICES="))).toBe(false);
  });

  it("omits --gpus without GPUs and honours port, host, extra flags and command", () => {
    const args = buildDockerRunArgs({
      image: "demo:latest",
      name: "n1",
      hostPort: 5555,
      host: "0.0.0.0",
      containerPort: 8080,
      extraArgs: ["--shm-size=1g"],
      command: ["python", "-m", "cog.server.http"],
    });
    expect(args).not.toContain("--gpus");
    expect(args).toContain("0.0.0.0:5555:8080");
    expect(args).toContain("PORT=8080");
    expect(args.slice(-5)).toEqual(["--shm-size=1g", "demo:latest", "python", "-m", "cog.server.http"]);
  });

  it("writes a single GPU the same way", () => {
    expect(buildDockerRunArgs({ image: "i", name: "n", hostPort: 1, gpuIndices: [0] })).toContain('"device=0"');
  });
});

describe("dockerAvailable", () => {
  const dir = mkdtempSync(join(tmpdir(), "ngpu-fake-docker-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const fakeDocker = (name: string, script: string) => {
    const path = join(dir, name);
    writeFileSync(path, `#!/bin/sh\n${script}\n`);
    chmodSync(path, 0o755);
    return path;
  };

  it("is false when the CLI does not exist", async () => {
    expect(await dockerAvailable({ docker: join(dir, "no-such-docker") })).toBe(false);
  });

  it("is false when the daemon does not answer", async () => {
    const docker = fakeDocker("down", 'echo "Cannot connect to the Docker daemon" >&2; exit 1');
    expect(await dockerAvailable({ docker })).toBe(false);
  });

  it("is false when docker info hangs past the timeout", async () => {
    const docker = fakeDocker("slow", "exec sleep 5");
    const t0 = performance.now();
    expect(await dockerAvailable({ docker, timeoutMs: 200 })).toBe(false);
    expect(performance.now() - t0).toBeLessThan(2_000);
  });

  it("is true when docker info reports a server version", async () => {
    const docker = fakeDocker("up", 'echo "27.3.1"');
    expect(await dockerAvailable({ docker })).toBe(true);
  });
});
