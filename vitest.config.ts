import { existsSync } from "node:fs";
import { defineConfig } from "vitest/config";

// The shared corpus of real nvidia-smi captures sits beside the team's checkout (CI always has it);
// elsewhere its test file would define nothing, which vitest counts as a failure.
const corpusPresent = existsSync(new URL("../shared/fixtures/nvidia-smi", import.meta.url));

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts", "control-plane/**/*.test.ts", "worker/**/*.test.ts", "sdk/**/*.test.ts", "cli/**/*.test.ts", "receipts/**/*.test.ts"],
    // Integration tests start servers and child processes; give them room on a 2-core box.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    maxWorkers: 2,
    allowOnly: false,
    exclude: ["**/node_modules/**", ...(corpusPresent ? [] : ["test/worker/gpu/nvidia-smi-corpus.test.ts"])],
  },
});
