import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
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
