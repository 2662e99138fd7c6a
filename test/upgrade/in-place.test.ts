import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { migrations } from "../../src/store/migrations/index.js";
import { cliPath, tempDir } from "../helpers/cli.js";
import { createTestDatabase } from "../helpers/postgres.js";
import {
  type PreviousRelease,
  previousRelease,
  previousReleaseNewestMigration,
  previousReleaseVersion,
} from "../helpers/previous-release.js";
import {
  adminToken,
  freePort,
  type Proc,
  startCli,
  startedOrKilled,
  startRunner,
  testTimings,
} from "../helpers/server.js";
import {
  deliver,
  expectDataReadsBack,
  makeUpgradeData,
  runnerGroup,
  secretSha256,
  succeeded,
  type UpgradeData,
} from "./upgrade-data.js";

/*
 * An in-place upgrade as an operator does it: the previous release's server stopped, today's
 * started on the same home (SQLite, `runyard up` as the previous README has it) or the same
 * database (PostgreSQL, `runyard server`), and then the previous release started again on the
 * store today's migrated. The runner is today's checkout's (`runyard runner`, as the tests start
 * runners), joined with a runner token the previous release made; it stays up across the upgrade
 * and reconnects to today's server by itself.
 */

const adminUrl = inject("postgresAdminUrl");
const todaysNewestMigration = Object.keys(migrations).sort().at(-1) as string;
const runnerId = "upgrade-runner";

interface Backend {
  name: string;
  /** The command an operator runs for this store. */
  command: "up" | "server";
  /** The store's settings, beyond the home. */
  env: () => Promise<Record<string, string>>;
}

const sqlite: Backend = { name: "SQLite (runyard up --home)", command: "up", env: async () => ({}) };
const postgres: Backend = {
  name: "PostgreSQL (runyard server, RUNYARD_DATABASE_URL)",
  command: "server",
  env: async () => ({ RUNYARD_DATABASE_URL: await createTestDatabase(adminUrl) }),
};

function describeInPlaceUpgrade(backend: Backend): void {
  describe(`an in-place upgrade from ${previousReleaseVersion} on ${backend.name}`, () => {
    const started: Proc[] = [];
    let release: PreviousRelease;
    let port: number;
    let home: string;
    let env: Record<string, string>;
    let url: string;
    let data: UpgradeData;
    let runner: Proc;
    let today: Proc;

    /** The build at `bin` on the store, on the same port each time; resolves once it listens. */
    const startBuild = async (bin: string): Promise<Proc> => {
      const proc = startCli(
        [backend.command, "--port", String(port), "--home", home],
        { RUNYARD_ADMIN_TOKEN: adminToken, ...testTimings(), ...env },
        tempDir("runyard-work-"),
        bin,
      );
      started.push(proc);
      await startedOrKilled(proc, /listening on http:\/\/\S+/);
      return proc;
    };

    beforeAll(async () => {
      release = await previousRelease();
      port = await freePort();
      home = tempDir();
      env = await backend.env();
      url = `http://127.0.0.1:${port}`;
      const previous = await startBuild(release.bin);
      data = await makeUpgradeData(release.bin, url, async (token) => {
        runner = await startRunner(url, token, { id: runnerId, group: runnerGroup });
        started.push(runner);
      });
      // 143: it stopped on the signal, as a server does (test/crash-recovery.test.ts).
      expect(await previous.kill("SIGTERM")).toBe(143);
      today = await startBuild(cliPath);
      // The previous release's build may run npm ci (see rolling.test.ts).
    }, 600_000);

    afterAll(async () => {
      await Promise.all(started.map((proc) => proc.kill("SIGKILL")));
    });

    it("reads back every object the previous release stored, the kept output byte for byte", async () => {
      await expectDataReadsBack(url, data);
    });

    it("runs the live version through the old hook, with the old secret, on the runner of the old token", async () => {
      // The runner reconnects by itself with the token the previous release made.
      await runner.waitFor(new RegExp(`runner ${runnerId} connected[\\s\\S]*runner ${runnerId} connected`));
      const log = await succeeded(url, await deliver(url, data.hookPath, "refs/heads/after-upgrade"));
      expect(log).toContain("version=2\n");
      expect(log).toContain("ref=refs/heads/after-upgrade\n");
      expect(log).toContain(`secret=${secretSha256}\n`);
      expect(log).toContain("bytes=\u00e4\u20ac\tend\n");
    });

    it("keeps the previous release off the store today's build migrated", async () => {
      expect(await today.kill("SIGTERM")).toBe(143);
      const previousNewest = previousReleaseNewestMigration;
      if (previousNewest !== todaysNewestMigration) {
        // Today's build added migrations the previous release does not know.
        const again = startCli(
          [backend.command, "--port", String(port), "--home", home],
          { RUNYARD_ADMIN_TOKEN: adminToken, ...testTimings(), ...env },
          tempDir("runyard-work-"),
          release.bin,
        );
        started.push(again);
        expect(await again.exited).toBe(2);
        // Its STORE_TOO_NEW, as 0.1.0 words it: the message and hint, not the code itself.
        expect(again.output()).toContain(
          `error: the database was migrated by a newer runyard (migration ${todaysNewestMigration}); upgrade runyard to open it`,
        );
        expect(again.output()).toContain("runyard never downgrades a schema");
      } else {
        // Same schema: the previous release opens the store and reads it as it left it.
        const again = await startBuild(release.bin);
        await expectDataReadsBack(url, data);
        expect(await again.kill("SIGTERM")).toBe(143);
      }
    });
  });
}

describeInPlaceUpgrade(sqlite);
describe.skipIf(!adminUrl)("on the suite's PostgreSQL cluster", () => {
  describeInPlaceUpgrade(postgres);
});
