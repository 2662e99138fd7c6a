import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { nativeHelperPath } from "../src/exec/native-helpers.js";
import { ForkServerLauncher } from "../src/exec/process/fork-server.js";
import { SpawnLauncher } from "../src/exec/process/spawn-launcher.js";
import { RunSandbox, type RunSandboxLayout, RunSandboxSlot } from "../src/exec/sandbox/run-sandbox.js";
import { probeSandbox, Sandbox } from "../src/exec/sandbox/sandbox.js";
import type { ExecRequest } from "../src/exec/types.js";
import { runLayoutIn } from "./helpers/run-layout.js";

/**
 * A sandbox made ahead of its run (a runner's pool) gets the run's folders in the request of the
 * run's first command: its door moves them, then starts the command (native/sandbox-door.c, 'W').
 */
const probe = await probeSandbox();
if (probe.isolation !== "sandbox") throw new Error(`these tests need bubblewrap: ${probe.problem}`);

const root = mkdtempSync(join(tmpdir(), "runyard-first-move-"));
const sandbox = new Sandbox({
  bwrap: probe.bwrap,
  hide: [join(root, "state")],
  clones: {
    onFallback: (reason) => {
      throw new Error(`not cloned: ${reason}`);
    },
  },
});
const launcher = new ForkServerLauncher(nativeHelperPath("fork-server"), new SpawnLauncher(), {
  killGraceMs: 1000,
});
const made: RunSandbox[] = [];

afterAll(async () => {
  await Promise.all(made.map((box) => box.close()));
  await launcher.close();
  rmSync(root, { recursive: true, force: true });
});

const layoutIn = (name: string): RunSandboxLayout => runLayoutIn(root, name);

async function pooled(name: string): Promise<{ box: RunSandbox; layout: RunSandboxLayout }> {
  const layout = layoutIn(name);
  const box = await RunSandbox.make(launcher, sandbox, layout);
  if (!(box instanceof RunSandbox)) throw new Error(box.problem);
  made.push(box);
  // What tells the pooled sandbox from another: its /tmp shows this.
  writeFileSync(join(layout.tmp, "pooled"), "");
  return { box, layout };
}

/** A command of the run in `layout`: what it printed, and how it ended. */
async function command(
  slot: RunSandboxSlot,
  layout: RunSandboxLayout,
  script: string,
  env: Record<string, string> = {},
) {
  let stdout = "";
  const request: ExecRequest & { cwd: string } = {
    argv: ["/bin/sh", "-c", script],
    env: { PATH: "/usr/bin:/bin", HOME: "/home/runner", ...env },
    cwd: layout.folder,
    exposure: { tmp: layout.tmp, homeFolder: layout.homeFolder! },
    killGraceMs: 1000,
    onOutput: (stream, data) => {
      if (stream === "stdout") stdout += data;
    },
  };
  const result = await slot.run(request, launcher);
  return { status: result?.status, spawnError: result?.spawnError, stdout };
}

describe("a pooled sandbox's first command", () => {
  it("runs in the pooled sandbox, at the run's folder, and the run's other commands after it, in the same one", async () => {
    const { box, layout: pool } = await pooled("pool-a");
    const layout = layoutIn("run-a");
    const problems: string[] = [];
    const slot = new RunSandboxSlot(sandbox, layout, {
      idleMs: () => undefined,
      made: box,
      movesFirst: [[pool.folder, layout.folder]],
      onProblem: (problem) => problems.push(problem),
    });
    // Two at once: the second may not enter before the first has brought the folders in.
    const [first, second] = await Promise.all([
      command(slot, layout, "pwd; test -e /tmp/pooled && echo pooled; touch first"),
      command(slot, layout, "pwd; test -e /tmp/pooled && echo pooled; touch second"),
    ]);
    await slot.close();
    expect(problems).toEqual([]);
    for (const ran of [first, second]) {
      expect(ran.status, ran.spawnError).toBe("success");
      expect(ran.stdout).toBe(`${layout.folder}\npooled\n`);
    }
  });

  it("runs in a sandbox made for the run when the folders cannot move into the pooled one, and says why", async () => {
    const { box } = await pooled("pool-b");
    const layout = layoutIn("run-b");
    const problems: string[] = [];
    const slot = new RunSandboxSlot(sandbox, layout, {
      idleMs: () => undefined,
      made: box,
      // Not a folder the pooled sandbox shows: its door cannot move it, and starts nothing.
      movesFirst: [[join(root, "runs", "not-shown"), layout.folder]],
      onProblem: (problem) => problems.push(problem),
    });
    const [first, second] = await Promise.all([
      command(slot, layout, "pwd; test -e /tmp/pooled && echo pooled; true"),
      command(slot, layout, "pwd; test -e /tmp/pooled && echo pooled; true"),
    ]);
    await slot.close();
    expect(problems).toEqual([expect.stringContaining("a pooled sandbox could not take its run's folder")]);
    expect(problems[0]).toContain("(move): ENOENT");
    expect(first.status, first.spawnError).toBe("success");
    expect(second.status, second.spawnError).toBe("success");
    // At the run's folder, in a sandbox whose /tmp is the run's own, not the pooled one's.
    expect(first.stdout).toBe(`${layout.folder}\n`);
    expect(second.stdout).toBe(first.stdout);
    expect(box.alive()).toBe(false);
  });

  it("runs the run's next command at the run's folder when its first never reached the pooled sandbox", async () => {
    const { box, layout: pool } = await pooled("pool-c");
    const layout = layoutIn("run-c");
    const slot = new RunSandboxSlot(sandbox, layout, {
      idleMs: () => undefined,
      made: box,
      movesFirst: [[pool.folder, layout.folder]],
    });
    // A step's env the fork-server cannot pass: refused before any request, so no folder moved.
    const first = await command(slot, layout, "true", { BROKEN: "a\0b" });
    const second = await command(slot, layout, "pwd; touch second");
    await slot.close();
    expect(first.status).toBe("failed");
    expect(first.spawnError).toContain("cannot be passed");
    expect(second.status, second.spawnError).toBe("success");
    expect(second.stdout).toBe(`${layout.folder}\n`);
    expect(existsSync(join(layout.folder, "second"))).toBe(true);
  });
});
