import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    // Two files at a time, whatever the core count (vitest's default is one fewer than the
    // cores: one on a 2-core machine). Most integration tests wait on processes, sockets and
    // Docker rather than compute, so two halve the suite's time on the 2-core CI machine; a test
    // that holds only on an idle machine is a race to fix, not a reason to run one at a time.
    maxWorkers: 2,
    projects: [
      {
        test: {
          name: "unit",
          include: ["src/**/*.test.ts", "web/*.test.ts"],
          testTimeout: 10_000,
          globalSetup: ["test/helpers/postgres-setup.ts"],
        },
      },
      {
        test: {
          name: "integration",
          include: ["test/**/*.test.ts"],
          testTimeout: 60_000,
          hookTimeout: 60_000,
          globalSetup: ["test/global-setup.ts", "test/helpers/postgres-setup.ts"],
        },
      },
    ],
  },
});
