import { existsSync, readdirSync } from "node:fs";
import { type AddressInfo, createServer } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { findPidsHierarchy } from "../src/exec/sandbox/run-cgroup.js";
import { tempDir } from "./helpers/cli.js";
import {
  type Proc,
  runnerToken,
  startRunner,
  startTestServer,
  submit,
  type TestServer,
} from "./helpers/server.js";
import { stepGate } from "./helpers/step-gate.js";

/**
 * A runner killed -9 cannot remove the cgroups of its runs' sandboxes (and of those its pool made
 * ahead): its next life, on the same state folder, removes them before it takes work, so a runner
 * that crashes now and then does not fill the pids hierarchy with empty groups.
 */
describe("a runner's run cgroups after a kill -9", () => {
  let server: TestServer;
  let runner: Proc | undefined;
  const gate = stepGate();

  beforeAll(async () => {
    server = await startTestServer(tempDir());
  });

  afterAll(async () => {
    await runner?.kill();
    await (await gate).close();
    await server?.proc.kill();
  });

  it("are removed by its next life, which says so", async () => {
    const hierarchy = findPidsHierarchy();
    if ("problem" in hierarchy) throw new Error(hierarchy.problem);
    const step = await gate;
    const home = tempDir();
    const token = await runnerToken(server.url);
    const start = () =>
      startRunner(server.url, token, {
        id: "cgroup-leftovers",
        labels: "cgroup-leftovers",
        env: { RUNYARD_HOME: home, RUNYARD_LOG_LEVEL: "warn" },
      });
    // The step tells its cgroup on the loopback (a platform admin's run has the host's network).
    let told: (text: string) => void = () => {};
    const toldGroup = new Promise<string>((resolve) => {
      told = resolve;
    });
    const listener = createServer((socket) => {
      let text = "";
      socket.on("data", (data) => {
        text += String(data);
      });
      socket.on("end", () => told(text));
    });
    await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve));
    const { port } = listener.address() as AddressInfo;
    runner = await start();
    await submit(
      server.url,
      [
        "name: leftovers",
        "inventory:",
        "  hosts:",
        "    worker: {labels: [cgroup-leftovers]}",
        "steps:",
        "  - name: wait",
        "    targets: [worker]",
        "    action: shell.run",
        "    args:",
        "      shell: bash",
        `      script: grep -E ':pids:|^0::' /proc/self/cgroup > /dev/tcp/127.0.0.1/${port}; ${step.wait}`,
        "",
      ].join("\n"),
    );
    // The step's own group, as the kernel names it: under the runner's folder of the hierarchy.
    const group = /\/runyard\/(runner-[0-9a-f]{16})\/(sandbox-[0-9a-f]{16})/.exec(await toldGroup)?.[0] ?? "";
    listener.close();
    expect(group).not.toBe("");
    const [, owner, sandbox] = group.split("/").slice(1);
    const ownFolder = join(hierarchy.folder, owner!);
    expect(existsSync(join(ownFolder, sandbox!))).toBe(true);
    const groupsBefore = readdirSync(ownFolder).filter((name) => name.startsWith("sandbox-"));
    await runner.kill("SIGKILL");
    // Its next life: the steps its earlier one left are killed, their groups removed.
    runner = await start();
    const said = await runner.waitFor(/removed (\d+) run cgroups this runner's previous life left/, 30_000);
    expect(Number(/removed (\d+) run cgroups/.exec(said)?.[1])).toBeGreaterThan(0);
    expect(existsSync(join(ownFolder, sandbox!))).toBe(false);
    for (const name of groupsBefore) expect(existsSync(join(ownFolder, name))).toBe(false);
    // A clean stop (SIGTERM) leaves nothing of it: its runs' groups, then its own folder.
    await runner.kill();
    runner = undefined;
    expect(existsSync(ownFolder)).toBe(false);
  }, 120_000);
});
