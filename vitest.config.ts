import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts", "control-plane/**/*.test.ts", "worker/**/*.test.ts", "sdk/**/*.test.ts", "cli/**/*.test.ts"],
    // Integration tests start servers and child processes; give them room on a 2-core box.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    maxWorkers: 2,
    allowOnly: false,
  },
});
