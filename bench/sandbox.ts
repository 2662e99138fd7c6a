import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createExecutor } from "../src/exec/create-executor.js";
import { nativeHelperPath } from "../src/exec/native-helpers.js";
import { ForkServerLauncher } from "../src/exec/process/fork-server.js";
import { SpawnLauncher } from "../src/exec/process/spawn-launcher.js";
import { RunSandbox } from "../src/exec/sandbox/run-sandbox.js";
import { probeSandbox, Sandbox } from "../src/exec/sandbox/sandbox.js";
import { treeCpuMs } from "./processes.js";
import { admin, follow, serverProcess, sqliteStore, submit } from "./server.js";
import type { BenchResult } from "./table.js";
import { alternating, runFlow, trivialSteps } from "./workflow.js";

const STEPS = 200;
/** What the sandbox may add to a trivial step (docs/security.md). */
const BUDGET_MS = 5;

/**
 * What the bubblewrap sandbox of a shared runner adds to a step: 200 trivial steps through the
 * fork-server, sandboxed and not, in turns in the same process.
 */
export async function sandboxStepCost(): Promise<BenchResult> {
  const probe = await probeSandbox();
  if (probe.isolation === "none") return { skipped: `sandboxed steps: ${probe.problem}` };
  const env = process.env as Record<string, string>;
  const plain = createExecutor({ baseEnv: env });
  const sandboxed = createExecutor({ baseEnv: env, sandbox: new Sandbox({ bwrap: probe.bwrap, hide: [] }) });
  const { yaml } = trivialSteps(STEPS);
  await runFlow(yaml, sandboxed); // warm-up
  const cpu = { withSandbox: 0, without: 0 };
  const counted = (key: keyof typeof cpu, run: () => Promise<void>) => async () => {
    const before = cpuNow();
    await run();
    cpu[key] += cpuSince(before);
  };
  const RUNS = 5;
  const [withSandbox, without] = await alternating(
    RUNS,
    counted("withSandbox", () => runFlow(yaml, sandboxed)),
    counted("without", () => runFlow(yaml, plain)),
  );
  plain.close();
  sandboxed.close();
  const perStep = (total: number) => (total / RUNS / STEPS).toFixed(2);
  const extraPerStep = (withSandbox - without) / STEPS;
  return {
    name: `extra time per step in the sandbox (${STEPS} steps, fork-server)`,
    measured: `${extraPerStep.toFixed(2)} ms (${(withSandbox / STEPS).toFixed(2)} vs ${(without / STEPS).toFixed(2)} ms a step; CPU ${perStep(cpu.withSandbox)} vs ${perStep(cpu.without)} ms)`,
    baseline: `${BUDGET_MS} ms`,
    ratio: extraPerStep / BUDGET_MS,
    target: "<= 1",
  };
}

/** CPU time of this process and of each child, as read at one moment (see `cpuSince`). */
interface CpuSnapshot {
  ownMs: number;
  children: Map<string, number>;
}

/**
 * CPU time so far of this process and of its children (the fork-servers) with everything they
 * reaped (the steps, bwrap and its pid 1): the wall time of a loaded machine hides what a
 * sandbox costs, its CPU time does not.
 */
function cpuNow(): CpuSnapshot {
  const { user, system } = process.cpuUsage();
  const children = new Map<string, number>();
  for (const task of readdirSync("/proc/self/task")) {
    const listed = readFileSync(`/proc/self/task/${task}/children`, "utf8").trim();
    for (const pid of listed ? listed.split(" ") : []) {
      try {
        const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
        // utime, stime, cutime, cstime (fields 14 to 17 of proc(5)), in ticks of 10 ms.
        const ticks = Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]);
        children.set(pid, ticks * 10);
      } catch {
        // ended meanwhile
      }
    }
  }
  return { ownMs: (user + system) / 1000, children };
}

/**
 * The CPU time spent since `before` by this process and by the children alive now. A child that
 * ended in between (an earlier benchmark's server, reaped by this process) counts for nothing:
 * summing totals would subtract the whole of its life.
 */
function cpuSince(before: CpuSnapshot): number {
  const now = cpuNow();
  let ms = now.ownMs - before.ownMs;
  for (const [pid, childMs] of now.children) ms += childMs - (before.children.get(pid) ?? 0);
  return ms;
}

/**
 * What the sandbox adds to a step as a `runyard up` user sees it: a run of 200 trivial steps
 * submitted and followed to its end, through one `runyard up` with its sandbox on (each run one
 * sandbox, its steps entered into it) and one with RUNYARD_SANDBOX=off, in turns.
 */
export async function upSandboxStepCost(): Promise<BenchResult> {
  const probe = await probeSandbox();
  if (probe.isolation === "none") return { skipped: `runyard up's sandbox: ${probe.problem}` };
  const { yaml } = trivialSteps(STEPS);
  const on = await serverProcess({}, sqliteStore, "up");
  const off = await serverProcess({ RUNYARD_SANDBOX: "off" }, sqliteStore, "up");
  const cpu = new Map<string, number>();
  const runTo = (up: { url: string; child: { pid?: number | undefined } }) => async () => {
    const before = treeCpuMs(up.child.pid ?? 0);
    const runId = await submit(up.url, yaml);
    await follow(up.url, runId);
    const status = await runStatus(up.url, runId);
    if (status !== "success") throw new Error(`the ${STEPS}-step run ended ${status}`);
    cpu.set(up.url, (cpu.get(up.url) ?? 0) + treeCpuMs(up.child.pid ?? 0) - before);
  };
  const RUNS = 5;
  let withSandbox: number;
  let without: number;
  try {
    await runTo(on)();
    await runTo(off)();
    cpu.clear();
    [withSandbox, without] = await alternating(RUNS, runTo(on), runTo(off));
  } finally {
    on.child.kill();
    off.child.kill();
  }
  const extra = (withSandbox - without) / STEPS;
  const cpuStep = (url: string) => ((cpu.get(url) ?? 0) / RUNS / STEPS).toFixed(2);
  return {
    name: `runyard up: ${STEPS} trivial steps of a run, sandbox on vs off`,
    measured: `${(withSandbox / STEPS).toFixed(2)} ms a step (+${extra.toFixed(2)} ms; CPU ${cpuStep(on.url)} ms)`,
    baseline: `${(without / STEPS).toFixed(2)} ms a step (CPU ${cpuStep(off.url)} ms)`,
    ratio: withSandbox / without,
    target: "<= 1.1",
  };
}

/**
 * A run's sandbox as it waits for its run: the memory of its processes and the CPU time it takes
 * to make and end, over 20 sandboxes made one after another through the fork-server, cloned from
 * the runner's template (as runners make them) and, in the same run, made by bwrap (as they are
 * with RUNYARD_SANDBOX_CLONES=0, or for a tenant's network). The template itself, made once per
 * runner, is made before the count.
 */
export async function runSandboxCost(): Promise<BenchResult[]> {
  const probe = await probeSandbox();
  if (probe.isolation === "none") return [{ skipped: `a run's sandbox: ${probe.problem}` }];
  let fellBack = "";
  const clone = await sandboxCost(
    new Sandbox({ bwrap: probe.bwrap, hide: [], clones: { onFallback: (reason) => (fellBack = reason) } }),
  );
  const bwrap = await sandboxCost(new Sandbox({ bwrap: probe.bwrap, hide: [] }));
  const bare = await bareCommandCost();
  if ("skipped" in clone) return [clone];
  if ("skipped" in bwrap) return [bwrap];
  if (fellBack) return [{ skipped: `a run's sandbox is not cloned here: ${fellBack}` }];
  return [
    {
      name: "a run's sandbox, cloned, made and idle: memory of its processes",
      measured: `${clone.rssMb.toFixed(2)} MB RSS (${clone.pssMb.toFixed(2)} MB PSS)`,
      baseline: `5 MB; made by bwrap: ${bwrap.rssMb.toFixed(2)} MB RSS (${bwrap.pssMb.toFixed(2)} MB PSS)`,
      ratio: clone.rssMb / 5,
      target: "<= 1",
    },
    {
      name: "a run's sandbox, cloned: CPU to make it, give it its run's folder with its first command (/bin/true) and end it (this process, the fork-server, its children)",
      measured: `${clone.cpuMs.toFixed(1)} ms (the runner's ${clone.ownMs.toFixed(1)}; ${(clone.cpuMs - bare).toFixed(1)} over its first command alone)`,
      baseline: `5 ms; same run: made by bwrap ${bwrap.cpuMs.toFixed(1)} ms (the runner's ${bwrap.ownMs.toFixed(1)}), its first command alone, no sandbox, ${bare.toFixed(1)} ms`,
      ratio: clone.cpuMs / 5,
      target: "<= 1",
    },
  ];
}

/**
 * The floor under the row above on this machine: CPU of the same first command (`/bin/true`)
 * through a fork-server, no sandbox; a process forked, exec'd and reaped, 20 times.
 */
async function bareCommandCost(): Promise<number> {
  const launcher = new ForkServerLauncher(nativeHelperPath("fork-server"), new SpawnLauncher(), {
    killGraceMs: 100,
  });
  const COUNT = 20;
  const request = { argv: ["/bin/true"], env: {}, killGraceMs: 100, onOutput: () => undefined };
  try {
    await launcher.run(request); // warm-up: the fork-server started
    const before = cpuNow();
    for (let i = 0; i < COUNT; i++) await launcher.run(request);
    return cpuSince(before) / COUNT;
  } finally {
    await launcher.close();
  }
}

/** What one of `sandbox`'s run sandboxes costs, each of 20 made, given its run's folder with a first command, idle, then ended. */
async function sandboxCost(
  sandbox: Sandbox,
): Promise<{ rssMb: number; pssMb: number; cpuMs: number; ownMs: number } | { skipped: string }> {
  const launcher = new ForkServerLauncher(nativeHelperPath("fork-server"), new SpawnLauncher(), {
    killGraceMs: 100,
  });
  const root = mkdtempSync(join(tmpdir(), "runyard-bench-sandbox-"));
  const COUNT = 20;
  const made: RunSandbox[] = [];
  let rssKb = 0;
  let pssKb = 0;
  let cpu = 0;
  let own = 0;
  try {
    const layout = (i: number) => {
      const folders = ["folder", "tmp", "scratch", "home"].map((name) => join(root, String(i), name));
      for (const folder of folders) mkdirSync(folder, { recursive: true });
      const [folder, tmp, scratch, homeFolder] = folders as [string, string, string, string];
      return { folder, tmp, scratch: [scratch], home: "/home/bench", homeFolder };
    };
    // Warm-up: bwrap's binary and libraries in the page cache, and the template a clone needs.
    const warm = await RunSandbox.make(launcher, sandbox, layout(COUNT));
    if (warm instanceof RunSandbox) await warm.close();
    const before = cpuNow();
    for (let i = 0; i < COUNT; i++) {
      const given = layout(i);
      const box = await RunSandbox.make(launcher, sandbox, given);
      if (!(box instanceof RunSandbox)) return { skipped: `a run's sandbox: ${box.problem}` };
      made.push(box);
      // As a pooled one's (the runner keeps RUNYARD_SANDBOX_POOL made ahead): given its run's folder
      // with its first command, which is `true`.
      const run = join(root, String(i), "run");
      const first = await launcher.run({
        ...box.enter({ argv: ["/bin/true"], env: {}, killGraceMs: 100, onOutput: () => undefined }, run),
        movesFirst: [[given.folder, run]],
      });
      if (first.status !== "success")
        return { skipped: `a run's sandbox could not take its run's folder: ${first.spawnError}` };
    }
    for (const box of made) {
      for (const pid of sandboxProcesses(box.holder.pid)) {
        rssKb += statusKb(pid, "VmRSS");
        pssKb += rollupKb(pid, "Pss");
      }
    }
    // Counted once the fork-server has reaped what made them: made and closed, all of it.
    await Promise.all(made.splice(0).map((box) => box.close()));
    cpu = cpuSince(before);
    own = cpuNow().ownMs - before.ownMs;
  } finally {
    await Promise.all(made.map((box) => box.close()));
    await launcher.close();
    rmSync(root, { recursive: true, force: true });
  }
  return { rssMb: rssKb / COUNT / 1024, pssMb: pssKb / COUNT / 1024, cpuMs: cpu / COUNT, ownMs: own / COUNT };
}

/**
 * A sandbox's processes: a clone's holder alone (pid 1 of its namespace, a child of the
 * fork-server); for bwrap's, the holder, its parent (bwrap's pid 1) and that one's (bwrap).
 */
function sandboxProcesses(holder: number): number[] {
  const parentOf = (pid: number) => {
    try {
      const text = readFileSync(`/proc/${pid}/stat`, "utf8");
      return Number(text.slice(text.lastIndexOf(")") + 2).split(" ")[1]);
    } catch {
      return 0;
    }
  };
  const nspid = /^NSpid:\s+(.*)$/m.exec(readFileSync(`/proc/${holder}/status`, "utf8"))?.[1]?.split(/\s+/);
  if (nspid?.at(-1) === "1") return [holder];
  const init = parentOf(holder);
  return [holder, init, parentOf(init)].filter((pid) => pid > 1);
}

function statusKb(pid: number, field: string): number {
  try {
    const line = readFileSync(`/proc/${pid}/status`, "utf8")
      .split("\n")
      .find((each) => each.startsWith(`${field}:`));
    return Number(line?.split(/\s+/)[1] ?? 0);
  } catch {
    return 0;
  }
}

function rollupKb(pid: number, field: string): number {
  try {
    const line = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8")
      .split("\n")
      .find((each) => each.startsWith(`${field}:`));
    return Number(line?.split(/\s+/)[1] ?? 0);
  } catch {
    return 0;
  }
}

/** The status of a run, as its owner reads it. */
async function runStatus(url: string, runId: string): Promise<string> {
  const response = await fetch(`${url}/api/runs/${runId}`, { headers: { authorization: `Bearer ${admin}` } });
  return ((await response.json()) as { status?: string }).status ?? `unreadable (${response.status})`;
}
