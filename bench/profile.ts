import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { benchDir, treeCpuMs } from "./processes.js";
import { ownCpuMs, runsInFlight, serverProcess, sqliteStore } from "./server.js";
import type { BenchResult } from "./table.js";

/** One frame of a V8 CPU profile (the `.cpuprofile` JSON Node writes with `--cpu-prof`). */
interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
}

/** A function's own CPU time over a profile (callees not counted), and its share of the busy time. */
export interface HotFrame {
  frame: string;
  selfMs: number;
  share: number;
}

/** The `top` frames of a profile by their own time, each as `name (file:line)`. */
export function hottestFrames(profile: CpuProfile, top: number): HotFrame[] {
  const samples = profile.samples?.length ?? 0;
  const msPerSample = samples ? (profile.endTime - profile.startTime) / 1000 / samples : 0;
  const byFrame = new Map<string, number>();
  for (const node of profile.nodes) {
    const { functionName, url, lineNumber } = node.callFrame;
    const file = url.replace(/^file:\/\//, "").replace(/^.*\/(dist|node_modules)\//, "$1/");
    // Waiting is not a cost: shares are of the time the thread worked.
    if (functionName === "(idle)") continue;
    const frame = `${functionName || "(anonymous)"}${file ? ` (${file}:${lineNumber + 1})` : ""}`;
    byFrame.set(frame, (byFrame.get(frame) ?? 0) + (node.hitCount ?? 0));
  }
  const total = [...byFrame.values()].reduce((sum, hits) => sum + hits, 0) || 1;
  return [...byFrame]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([frame, hits]) => ({ frame, selfMs: hits * msPerSample, share: hits / total }));
}

const RUNS = 1000;
const TOP = 15;

/**
 * `npm run bench -- profile`: `runyard up` (server and local runner in one process, its sandbox
 * on) under V8's CPU profiler over 1,000 trivial runs, 8 in flight; prints the 15 frames of its
 * main thread that took the most CPU themselves, and its CPU time a run. Where the time of a run
 * goes, to cut it; not a target of its own.
 */
export async function profile(): Promise<BenchResult[]> {
  const folder = benchDir();
  const up = await serverProcess({ RUNYARD_CAPACITY: "8" }, sqliteStore, "up", [
    "--cpu-prof",
    `--cpu-prof-dir=${folder}`,
  ]);
  const pid = up.child.pid ?? 0;
  let ownMs: number;
  let treeMs: number;
  try {
    await runsInFlight(up.url, 16, 8);
    const [ownBefore, treeBefore] = [ownCpuMs(pid), treeCpuMs(pid)];
    await runsInFlight(up.url, RUNS, 8);
    ownMs = (ownCpuMs(pid) - ownBefore) / RUNS;
    treeMs = (treeCpuMs(pid) - treeBefore) / RUNS;
  } finally {
    // SIGTERM: `runyard up` ends as a user's Ctrl-C ends it, and Node writes the profile on its way out.
    const exited = new Promise((resolve) => up.child.once("exit", resolve));
    up.child.kill("SIGTERM");
    await exited;
  }
  // The largest profile is the main thread's (the parsing threads write theirs beside it).
  const profiles = readdirSync(folder)
    .filter((name) => name.endsWith(".cpuprofile"))
    .map((name) => readFileSync(join(folder, name), "utf8"))
    .sort((a, b) => b.length - a.length);
  if (!profiles[0]) return [{ skipped: `profile: runyard up wrote no CPU profile in ${folder}` }];
  const frames = hottestFrames(JSON.parse(profiles[0]) as CpuProfile, TOP);
  console.log(`runyard up over ${RUNS} trivial runs, 8 in flight: its main thread's ${TOP} hottest frames`);
  for (const { frame, selfMs, share } of frames)
    console.log(`  ${(share * 100).toFixed(1).padStart(5)}%  ${selfMs.toFixed(0).padStart(6)} ms  ${frame}`);
  console.log(
    `  CPU a run (profiler on): ${ownMs.toFixed(1)} ms in runyard up, ${treeMs.toFixed(1)} ms with its steps`,
  );
  console.log(`  (the profiles: ${folder})\n`);
  return [];
}
