import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nativeHelperPath } from "../../src/exec/native-helpers.js";
import { ForkServerLauncher } from "../../src/exec/process/fork-server.js";
import { SpawnLauncher } from "../../src/exec/process/spawn-launcher.js";
import { findPidsHierarchy, type PidsHierarchy } from "../../src/exec/sandbox/run-cgroup.js";
import { probeSandbox, Sandbox } from "../../src/exec/sandbox/sandbox.js";

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
