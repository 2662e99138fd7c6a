import { cliStart } from "./cli.js";
import { maskingThroughput } from "./masking.js";
import { firstByteLatency, idleRunnerMemory, idleSseMemory, runThroughput } from "./server.js";
import { type BenchRow, printTable } from "./table.js";
import { forkServerGain, orphanGuardCost, outputThroughput, stepOverhead } from "./workflow.js";

/** `npm run bench`: each benchmark against a baseline measured in the same process. */
const benches: Array<() => Promise<BenchRow | BenchRow[]>> = [
  cliStart,
  stepOverhead,
  forkServerGain,
  orphanGuardCost,
  outputThroughput,
  firstByteLatency,
  runThroughput,
  idleRunnerMemory,
  maskingThroughput,
  idleSseMemory,
];

const only = process.argv[2];
const rows: BenchRow[] = [];
for (const bench of benches) {
  if (only && !bench.name.toLowerCase().includes(only.toLowerCase())) continue;
  rows.push(...[await bench()].flat());
}
printTable(rows);
