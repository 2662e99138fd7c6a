import {
  agentRunOverhead,
  agentRunsAtOnce,
  agentSandboxOverhead,
  forgeWebhookToFirstEvent,
} from "./agents.js";
import { botsSimpleBuild, botsStartToRunning } from "./bots.js";
import { cliStart } from "./cli.js";
import { agentKubernetesOverhead } from "./kubernetes.js";
import { maskingThroughput } from "./masking.js";
import { peersFirstByte } from "./peers.js";
import { postgresVsSqlite } from "./postgres.js";
import { profile } from "./profile.js";
import { runSandboxCost, sandboxStepCost, upSandboxStepCost } from "./sandbox.js";
import { scheduleTicks1000 } from "./schedules.js";
import { firstByteLatency, idleRunnerMemory, idleSseMemory } from "./server.js";
import { type BenchResult, printTable } from "./table.js";
import { tracingCost } from "./tracing.js";
import { outputToSseClient, queuedRunsMemory, runThroughput } from "./up.js";
import { webHugeLog } from "./web.js";
import {
  forkServerGain,
  graphParallelGain,
  oneStepRun,
  orphanGuardCost,
  outputThroughput,
  stepOverhead,
} from "./workflow.js";
import { submitWhileWorstInputs } from "./worst-inputs.js";

/**
 * `npm run bench`: each benchmark against a baseline measured in the same run. `npm run bench --
 * NAME` runs those whose function name contains NAME (e.g. `peers`, `oneStepRun`).
 */
const benches: Array<() => Promise<BenchResult | BenchResult[]>> = [
  cliStart,
  oneStepRun,
  stepOverhead,
  graphParallelGain,
  forkServerGain,
  orphanGuardCost,
  sandboxStepCost,
  upSandboxStepCost,
  runSandboxCost,
  outputThroughput,
  outputToSseClient,
  firstByteLatency,
  runThroughput,
  tracingCost,
  queuedRunsMemory,
  idleRunnerMemory,
  maskingThroughput,
  idleSseMemory,
  scheduleTicks1000,
  submitWhileWorstInputs,
  // Starts its own PostgreSQL cluster; a skipped line when the binaries are missing.
  postgresVsSqlite,
  // Installs graphile-worker with npm (once, under .bench-cache/peers) and starts PostgreSQL.
  peersFirstByte,
  agentRunOverhead,
  agentRunsAtOnce,
  // Needs the Docker engine and Claude Code.
  agentSandboxOverhead,
  // Needs the Docker engine and Claude Code; the scripted Kubernetes API server runs its pods.
  agentKubernetesOverhead,
  // The scripted GitHub and the built-in loop: no network, no CLI.
  forgeWebhookToFirstEvent,
  // Need the Docker engine and the docker CLI; skipped lines without them.
  botsStartToRunning,
  botsSimpleBuild,
  // Needs Debian's chromium and a built dist/web; skipped lines without them.
  webHugeLog,
];

/** Run only when named (`npm run bench -- profile`): they print what they found, not a row. */
const onRequest: Array<() => Promise<BenchResult[]>> = [profile];

const only = process.argv[2];
const rows: BenchResult[] = [];
for (const bench of [...benches, ...(only ? onRequest : [])]) {
  if (only && !bench.name.toLowerCase().includes(only.toLowerCase())) continue;
  rows.push(...[await bench()].flat());
}
printTable(rows);
