import { describe, expect, inject, it } from "vitest";
import { formatSoakReport, runChaosSoak } from "./chaos-soak.js";
import { soakSeed } from "./seeded-random.js";

/*
 * The chaos soak: two `runyard server` replicas on one PostgreSQL database and three runners
 * listing both, taking runs submitted over HTTP while a random replica or runner is killed -9
 * and started again. CI runs this short version; `npm run soak` runs the long one (2,000 runs,
 * a kill every 20 s) through this same file: RUNYARD_SOAK_RUNS and RUNYARD_SOAK_KILL_EVERY_S
 * change only the parameters. RUNYARD_SOAK_SEED replays a seed's victims and runs.
 */

const adminUrl = inject("postgresAdminUrl");
const runs = Number(process.env.RUNYARD_SOAK_RUNS ?? 150);
const killEveryMs = Number(process.env.RUNYARD_SOAK_KILL_EVERY_S ?? 5) * 1000;
const seed = soakSeed();
/** Generous: a busy 2-core machine takes ~1 s a run here, the fleet's start and checks ~1 min. */
const timeoutMs = 300_000 + runs * 2_000;

describe.skipIf(!adminUrl)("chaos soak: replicas and runners killed -9 while runs go through", () => {
  it(
    `ends each of ${runs} runs once in a true state and stores every line once, with a kill -9 every ${killEveryMs / 1000} s`,
    async () => {
      const report = await runChaosSoak({
        runs,
        killEveryMs,
        seed,
        adminUrl,
        log: (line) => console.log(line),
      });
      console.log(formatSoakReport(report));
      expect(report.runs).toBeGreaterThanOrEqual(runs);
      expect(report.kills.replica + report.kills.runner).toBeGreaterThan(0);
      // As text, with the seed that replays it: a CI report shows the whole of it.
      expect(report.anomalies.join("\n"), formatSoakReport(report)).toBe("");
    },
    timeoutMs,
  );
});
