import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nativeHelperPath } from "../../src/exec/native-helpers.js";
import { ForkServerLauncher } from "../../src/exec/process/fork-server.js";
import { SpawnLauncher } from "../../src/exec/process/spawn-launcher.js";
import { findPidsHierarchy, type PidsHierarchy } from "../../src/exec/sandbox/run-cgroup.js";
import { probeSandbox, Sandbox } from "../../src/exec/sandbox/sandbox.js";
import type { RunPlace } from "../../src/runner/run-folders.js";

/**
 * What a sandboxing runner's RunFolders works with, as `runyard up` has it: bubblewrap, sandboxes
 * cloned from a template, the fork-server, the runs' pids cgroups. `root` is a fresh temp folder
 * (`<root>/state` hidden from the sandboxes); `problems` collects what the sandbox and the pool say.
 */
export async function pooledSandboxes(name: string): Promise<{
  root: string;
  sandbox: Sandbox;
  launcher: ForkServerLauncher;
  problems: string[];
}> {
  const probe = await probeSandbox();
  if (probe.isolation !== "sandbox") throw new Error(`these tests need bubblewrap: ${probe.problem}`);
  const root = mkdtempSync(join(tmpdir(), `runyard-${name}-`));
  const pids = findPidsHierarchy();
  const problems: string[] = [];
  const sandbox = new Sandbox({
    bwrap: probe.bwrap,
    hide: [join(root, "state")],
    ...("problem" in pids ? {} : { pids: { hierarchy: pids as PidsHierarchy, max: 64 } }),
    clones: { onFallback: (reason) => problems.push(`made by bubblewrap: ${reason}`) },
  });
  const launcher = new ForkServerLauncher(nativeHelperPath("fork-server"), new SpawnLauncher(), {
    killGraceMs: 1000,
  });
  return { root, sandbox, launcher, problems };
}

/**
 * Runs `script` with `sh -c` as a step of the run whose place it is (its sandbox, folder, /tmp,
 * $HOME and scratch), as a runner does; its status and what it printed.
 */
export async function stepIn(
  place: RunPlace,
  launcher: ForkServerLauncher,
  script: string,
  signal?: AbortSignal,
): Promise<{ status?: string; stdout: string }> {
  let stdout = "";
  const result = await place.sandbox?.run(
    {
      ...(signal ? { signal } : {}),
      argv: ["/bin/sh", "-c", script],
      env: { PATH: "/usr/bin:/bin", HOME: "/home/runner", RUNYARD_OUTPUT: join(place.scratch, "outputs") },
      cwd: place.folder,
      exposure: { tmp: place.tmp, homeFolder: place.home, writable: [join(place.scratch, "outputs")] },
      killGraceMs: 1000,
      onOutput: (stream, data) => {
        if (stream === "stdout") stdout += data;
      },
    },
    launcher,
  );
  return { status: result?.status, stdout };
}
