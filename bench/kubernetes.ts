import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { DockerEngine } from "../src/exec/docker/docker-engine.js";
import { KubeCluster } from "../src/exec/kubernetes/cluster.js";
import { agentBaseImage } from "../test/helpers/base-images.js";
import { startScriptedKubernetes } from "../test/k8s-api-server/server.js";
import { type ModelServer, startModelServer } from "../test/model-server/server.js";
import { claudeBin, median, type Timing, throughRunyard, withAgentRunner, writeScript } from "./agents.js";
import type { BenchResult, BenchRow } from "./table.js";

/** The turns' image: the agent tests' image with Claude Code copied in where the runner has it. */
async function kubernetesAgentImage(bin: string): Promise<string> {
  const base = await agentBaseImage();
  const packageRoot = dirname(dirname(dirname(bin)));
  const tag = `runyard-test-k8s-agent:${Buffer.from(packageRoot).toString("hex").slice(-12)}`;
  const present = await new DockerEngine().docker
    .getImage(tag)
    .inspect()
    .then(() => true)
    .catch(() => false);
  if (!present) {
    const built = spawnSync("docker", ["build", "-q", "-t", tag, "-f", "-", packageRoot], {
      input: `FROM ${base}\nCOPY . ${packageRoot}/\n`,
      encoding: "utf8",
      timeout: 300_000,
    });
    if (built.status !== 0) throw new Error(`cannot build ${tag}: ${built.stderr}`);
  }
  return tag;
}

/**
 * A Claude Code turn (a Write, then a text answer, scripted model server) in `execution_mode:
 * kubernetes` against the same turn in process mode, on one machine: the Job, its Secret and
 * NetworkPolicy, the pod started in Docker by the scripted API server, its log followed and the
 * Job deleted (Foreground, waited for), against a child process. POST -> run.finished.
 */
export async function agentKubernetesOverhead(): Promise<BenchResult[]> {
  const bin = await claudeBin();
  if (!bin) {
    return [
      {
        skipped:
          "agent turn in kubernetes mode: Claude Code not found in $RUNYARD_AGENTS_DIR (/tmp/runyard-agent-clis) nor on PATH",
      },
    ];
  }
  if (!(await new DockerEngine().ping())) {
    return [{ skipped: "agent turn in kubernetes mode: no Docker engine answers" }];
  }
  const image = await kubernetesAgentImage(bin);
  const root = mkdtempSync(join(tmpdir(), "runyard-bench-k8s-"));
  const claim = join(root, "claim");
  mkdirSync(claim, { recursive: true });
  const namespace = "agents";
  const k8s = await startScriptedKubernetes({ root: join(root, "cluster"), namespaces: [namespace] });
  const model: ModelServer = await startModelServer({ conversations: [] });
  try {
    k8s.addClaim(namespace, "runyard-work", claim);
    const kubeconfig = k8s.writeKubeconfig(k8s.addServiceAccount({ namespace }), namespace);
    const cluster = await KubeCluster.connect({ KUBECONFIG: kubeconfig }, { namespace });
    const path = [dirname(bin), process.env.PATH ?? ""].join(delimiter);
    const measure = async (mode: "process" | "kubernetes"): Promise<Timing[]> => {
      const home = join(claim, mode);
      mkdirSync(home, { recursive: true });
      return withAgentRunner(
        {
          capacity: 1,
          path,
          home,
          ...(mode === "kubernetes"
            ? {
                kubernetes: {
                  cluster,
                  image,
                  extraSecrets: [],
                  claim: { name: "runyard-work", root: claim },
                  limits: { memoryBytes: 1024 * 1024 * 1024, cpuMillis: 1000 },
                  start: { pullTimeoutMs: 30_000, scheduleTimeoutMs: 30_000 },
                  runnerId: "bench-agents",
                },
              }
            : {}),
        },
        async (ctx) => {
          const once = async (): Promise<Timing> => {
            const cwd = mkdtempSync(join(home, "workspaces", "cwd-"));
            // The pod's user (nobody under a root runner) writes there, as in a worktree the runner opened.
            chmodSync(cwd, 0o777);
            model.setScript(writeScript(cwd));
            const timing = await throughRunyard(ctx, model.url, cwd);
            if (!existsSync(join(cwd, "hello.txt")))
              throw new Error(`${mode}: Claude Code wrote no hello.txt`);
            return timing;
          };
          mkdirSync(join(home, "workspaces"), { recursive: true });
          // The first warms the disk cache, the image's layers and the CLI's state.
          await once();
          const timings: Timing[] = [];
          for (let i = 0; i < 3; i++) timings.push(await once());
          return timings;
        },
      );
    };
    const processTimings = await measure("process");
    const kubeTimings = await measure("kubernetes");
    const ours = median(kubeTimings.map((t) => t.total));
    const theirs = median(processTimings.map((t) => t.total));
    const row: BenchRow = {
      name: "agent turn: kubernetes mode",
      measured: `${ours.toFixed(0)} ms (+${(ours - theirs).toFixed(0)} ms)`,
      baseline: `${theirs.toFixed(0)} ms in process mode`,
      ratio: ours / theirs,
      target: "<= 3",
      note: "Claude Code, scripted model server (Write, then text), POST /api/runs -> run.finished; kubernetes mode: a Job, its Secret and NetworkPolicy through @kubernetes/client-node against the scripted API server on 127.0.0.1, whose pod runs in Docker, the log followed, the Job deleted and waited for; process mode: the same runner's child process; medians of 3 after one warm-up each. A real cluster adds scheduling and image pulls.",
    };
    return [row];
  } finally {
    await model.stop();
    await k8s.close();
  }
}
