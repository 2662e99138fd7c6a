import { defineConfig } from "vitest/config";
import ShortProjectFirst from "./test/cost/sequencer.js";

/**
 * Integration files that run alone, before the others. limits.test.ts holds the server to figures
 * a user's machine would show (its memory and /health latency while a 200 MB run streams to five
 * clients), and a second file's processes on the same 2 cores distort them. database-restart
 * restarts and kills -9 a PostgreSQL under a fleet of replicas, runners and 60 runs: beside the
 * other files on a machine already running two busy loops, six of its runs had not ended 60 s
 * after the last restart (the fleet was starved, not stuck: alone on the same busy machine it
 * holds). The others that ran alone once (the chaos soak, the bots page, OpenCode's retries)
 * wait on events and hold beside other files, quiet or busy. They go first: alone they leave most
 * of the second core idle (30 s at the end of a run, 40 to 85% idle), and at the start `npm test`'s
 * lint and typechecks use it, at the lowest CPU priority (build/test.js).
 */
const alone = ["test/limits.test.ts", "test/database-restart.test.ts"];

const integration = {
  // A net for a hung test, not a speed target (the speed targets are in bench/): on a host 3.4
  // times slower than usual, a full run beside other work took several tests past 45 s of 60.
  testTimeout: 120_000,
  // A worker runs file after file in one process (vitest's isolate: false): the test runner, the
  // helpers and the modules they load are loaded once a worker, not once a file. On the 2-core
  // machine the integration files' own processes (vitest's) took 1.5 s of CPU each, ~300 s a
  // run; a file keeps nothing of another's, as each starts what it needs (its servers, runners,
  // folders) and stops it in its hooks.
  isolate: false,
  hookTimeout: 120_000,
  // `expect.poll` waits for what a page, a server or a container shows; vitest's default of 1 s
  // is what a page's first load or an event's trip through a server takes on a busy 2-core machine
  // (a CI run failed a poll of the run page this way). A poll ends as soon as it holds: this is a
  // net for a hang, as the test timeout is, and a poll that needs less or more says so itself.
  expect: { poll: { timeout: 20_000 } },
  // The last completes OpenCode's first install in the machine's config folder, as a user's first
  // long turn does (test/helpers/opencode-setup.ts).
  globalSetup: [
    "test/global-setup.ts",
    "test/helpers/postgres-setup.ts",
    "test/helpers/browser-server.ts",
    "test/helpers/opencode-setup.ts",
  ],
  // The CPU a file used, for the cost map (first, so it counts what the other hooks stop); the
  // temp folders a file's tests made (`tempDir`) go after its last hook, and the PostgreSQL
  // databases it made are dropped (drop-test-databases.ts).
  setupFiles: [
    "test/cost/cpu.ts",
    "test/helpers/remove-temp-folders.ts",
    "test/helpers/drop-test-databases.ts",
  ],
};

export default defineConfig({
  test: {
    // The cost map (docs/test-cost.md) rides along: test-artifacts/test-cost.md after every run.
    reporters: ["default", "./test/cost/reporter.ts"],
    // Four files at a time, whatever the core count (vitest's default is one fewer than the
    // cores: one on a 2-core machine). Integration tests wait on processes, sockets and Docker as
    // well as compute: with two, the 2-core CI machine sat idle 27% of the run; with three, 13%,
    // and the run took 884 s instead of 987; with four the tests took 696 s instead of 728. A test
    // that holds only on an idle machine is a race to fix, not a reason to run fewer at a time.
    maxWorkers: 4,
    // The unit files first, longest first, then the integration files (test/cost/sequencer.ts).
    sequence: { sequencer: ShortProjectFirst },
    projects: [
      {
        test: {
          name: "unit",
          include: ["src/**/*.test.ts", "web/*.test.ts"],
          // A store test against PostgreSQL took 8.6 s of its 10 on a host five times slower than
          // usual, four files at a time: a timeout is a net for a hung test, not a speed target.
          testTimeout: 30_000,
          hookTimeout: 30_000,
          // As the integration files: loaded once a worker (unit CPU 162 s to 88 s).
          isolate: false,
          globalSetup: ["test/helpers/postgres-setup.ts"],
          // A file's PostgreSQL databases are dropped after its last hook (drop-test-databases.ts).
          setupFiles: ["test/cost/cpu.ts", "test/helpers/drop-test-databases.ts"],
          sequence: { groupOrder: 1 },
        },
      },
      {
        test: {
          name: "integration",
          include: ["test/**/*.test.ts"],
          exclude: alone,
          ...integration,
          sequence: { groupOrder: 1 },
        },
      },
      {
        test: {
          name: "integration-alone",
          include: alone,
          ...integration,
          // No browser: neither file opens a page, and each project's global setup runs its own.
          globalSetup: ["test/global-setup.ts", "test/helpers/postgres-setup.ts"],
          maxWorkers: 1,
          sequence: { groupOrder: 0 },
        },
      },
    ],
  },
});
