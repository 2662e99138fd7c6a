import { agentRunOverhead, agentRunsAtOnce } from "./agents.js";
import { botsSimpleBuild, botsStartToRunning } from "./bots.js";
import { cliStart } from "./cli.js";
import { maskingThroughput } from "./masking.js";
import { postgresVsSqlite } from "./postgres.js";
import { sandboxStepCost } from "./sandbox.js";
import { firstByteLatency, idleRunnerMemory, idleSseMemory, runThroughput } from "./server.js";
import { type BenchResult, printTable } from "./table.js";
import { webHugeLog } from "./web.js";
import { forkServerGain, orphanGuardCost, outputThroughput, stepOverhead } from "./workflow.js";

/** `npm run bench`: each benchmark against a baseline measured in the same process. */
const benches: Array<() => Promise<BenchResult | BenchResult[]>> = [
  cliStart,
  stepOverhead,
  forkServerGain,
  orphanGuardCost,
  sandboxStepCost,
  outputThroughput,
  firstByteLatency,
  runThroughput,
  idleRunnerMemory,
  maskingThroughput,
  idleSseMemory,
  // Starts its own PostgreSQL cluster; a skipped line when the binaries are missing.
  postgresVsSqlite,
  agentRunOverhead,
  agentRunsAtOnce,
  // Need the Docker engine and the docker CLI; skipped lines without them.
  botsStartToRunning,
  botsSimpleBuild,
  // Needs Debian's chromium and a built dist/web; skipped lines without them.
  webHugeLog,
];

const only = process.argv[2];
const rows: BenchResult[] = [];
for (const bench of benches) {
  if (only && !bench.name.toLowerCase().includes(only.toLowerCase())) continue;
  rows.push(...[await bench()].flat());
}
printTable(rows);
