import { describe, expect, it } from "vitest";
import type { ExecRequest } from "../types.js";
import type { KubeCluster } from "./cluster.js";
import { KubeJobLauncher, type KubeJobSettings } from "./job-launcher.js";

/** A cluster no call may reach: the command is refused before any Job is made. */
const untouchable = new Proxy({} as KubeCluster, {
  get(_target, key) {
    throw new Error(`the cluster was used (${String(key)})`);
  },
});

/** A request's callbacks and grace, which no refused command reaches. */
const request = (fields: Pick<ExecRequest, "argv"> & Partial<ExecRequest>): ExecRequest => ({
  env: {},
  killGraceMs: 1000,
  onOutput: () => undefined,
  ...fields,
});

function launcher(claim?: KubeJobSettings["claim"]): KubeJobLauncher {
  return new KubeJobLauncher({
    cluster: untouchable,
    image: "registry.example/runyard-agent:1",
    labels: {},
    extraSecrets: [],
    user: { uid: 10001, gid: 10001 },
    limits: {},
    ...(claim ? { claim } : {}),
    egress: [],
    start: { pullTimeoutMs: 1000, scheduleTimeoutMs: 1000 },
    deadlineSeconds: 60,
  });
}

describe("KubeJobLauncher before it makes a Job", () => {
  it("refuses a program under /tmp, which every pod gets empty, saying where to install it", async () => {
    const result = await launcher({ name: "work", root: "/work" }).run(
      request({
        argv: ["/tmp/ci/runyard-home/agents/claude_code/node_modules/.bin/claude", "-p", "hi"],
        cwd: "/work/worktrees/t1",
      }),
    );
    expect(result.status).toBe("failed");
    expect(result.spawnError).toContain("lies under /tmp, which every Job's pod gets as an empty folder");
    expect(result.spawnError).toContain("runyard agents install --home");
  });

  it("refuses a folder the command reads from the image under the pod's home", async () => {
    const result = await launcher().run(
      request({
        argv: ["node", "x.js"],
        exposure: { writable: [], readable: ["/home/runyard/.agents"] },
      }),
    );
    expect(result.spawnError).toContain("/home/runyard/.agents lies under /home/runyard");
  });

  it("takes a program under /tmp that the workspace claim mounts", async () => {
    const run = launcher({ name: "work", root: "/tmp/claim" }).run(
      request({
        argv: ["/tmp/claim/home/agents/bin/claude"],
        cwd: "/tmp/claim/worktrees/t1",
      }),
    );
    // Past the check, the Job is being made: the cluster is reached.
    await expect(run).rejects.toThrow("the cluster was used");
  });
});
