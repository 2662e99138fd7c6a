import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { nativeHelperPath } from "../src/exec/native-helpers.js";
import { ForkServerLauncher } from "../src/exec/process/fork-server.js";
import { SpawnLauncher } from "../src/exec/process/spawn-launcher.js";
import { type RunSandbox, type RunSandboxLayout, RunSandboxSlot } from "../src/exec/sandbox/run-sandbox.js";
import { probeSandbox, Sandbox } from "../src/exec/sandbox/sandbox.js";
import { runLayoutIn } from "./helpers/run-layout.js";

/** A run's sandbox slot closed (the run's end, the runner's stop) while its first command waits. */
const probe = await probeSandbox();
if (probe.isolation !== "sandbox") throw new Error(`these tests need bubblewrap: ${probe.problem}`);

const root = mkdtempSync(join(tmpdir(), "runyard-slot-close-"));
const sandbox = new Sandbox({ bwrap: probe.bwrap, hide: [join(root, "state")] });
const launcher = new ForkServerLauncher(nativeHelperPath("fork-server"), new SpawnLauncher(), {
  killGraceMs: 1000,
});

afterAll(async () => {
  await launcher.close();
  rmSync(root, { recursive: true, force: true });
});

const layoutIn = (name: string): RunSandboxLayout => runLayoutIn(root, name);

describe("a run's sandbox closed while its first command waits for it to be made", () => {
  it("leaves no sandbox running after its close", async () => {
    const layout = layoutIn("closing");
    const slot = new RunSandboxSlot(sandbox, layout, { idleMs: () => undefined });
    // The first command makes the run's sandbox; the run ends (or the runner stops) meanwhile.
    const command = slot.run(
      {
        argv: ["/bin/sh", "-c", "echo ran"],
        env: { PATH: "/usr/bin:/bin", HOME: "/home/runner" },
        cwd: layout.folder,
        exposure: { tmp: layout.tmp, homeFolder: layout.homeFolder! },
        killGraceMs: 1000,
        onOutput: () => undefined,
      },
      launcher,
    );
    const closing = slot.close();
    await closing;
    await command;
    // Whatever the command got, the closed slot holds no live sandbox (no holder, door, cgroup left).
    const left = await (slot as unknown as { made?: Promise<RunSandbox | undefined> }).made;
    const live = left?.alive() === true;
    await left?.close();
    expect(live, "a sandbox made after the slot's close, never ended").toBe(false);
  });
});
