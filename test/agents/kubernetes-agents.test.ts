/**
 * `execution_mode: kubernetes` end to end: a runner started from the agent runner's config.k8s.yaml
 * keys runs each agent turn as a Job through `@kubernetes/client-node` against the scripted API
 * server (test/k8s-api-server: the real REST paths, the 1.33 schemas, the Role of
 * deploy/kubernetes, pods run in Docker). The real Claude Code CLI and the built-in loop, pointed
 * at the scripted model server, write, commit and report tokens as in process mode; the model
 * key is in no Job or pod spec (read back through the API and kubectl); cancel and each fault a
 * cluster gives end the run with its typed error and leave no Job, Secret or NetworkPolicy.
 */
import { execFile } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { BatchV1Api, KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adapterFor } from "../../src/agents/registry.js";
import type { RunEvent } from "../../src/core/events.js";
import { agentCli } from "../helpers/agent-cli.js";
import { runCli, tempDir } from "../helpers/cli.js";
import { requireDocker } from "../helpers/docker.js";
import { git, seedBareRepo } from "../helpers/git-repos.js";
import { kubernetesAgentImage } from "../helpers/kube-agent-image.js";
import { startKubeAgentRunner } from "../helpers/kube-agent-runner.js";
import { nextObject, storeHolds } from "../helpers/kube-store-wait.js";
import {
  api,
  isFinal,
  type Proc,
  readEvents,
  startTestServer,
  type TestServer,
  waitForRun,
} from "../helpers/server.js";
import type { ScriptedKubernetes } from "../k8s-api-server/server.js";
import { type ModelServer, startModelServer } from "../model-server/server.js";

const haveDocker = await requireDocker();
const claude = (() => {
  const pkg = adapterFor("claude_code")?.package;
  return pkg ? agentCli("claude_code", pkg.name, pkg.version, pkg.bin) : undefined;
})();
const namespace = "agents";
const apiKey = "sk-k8s-model-key-7e11a";
const printHello = 'print("hello")\n';

let k8s: ScriptedKubernetes;
let server: TestServer;
let model: ModelServer;
let runner: Proc;
let restart: () => Promise<Proc>;
let root: string;
let kubeconfig: string;
let image: string;

/**
 * kubectl against the scripted server, which runs in this process: asynchronously, since a
 * synchronous child would block the event loop the server answers on (kubectl then sees TLS
 * handshake timeouts).
 */
async function kubectl(...args: string[]): Promise<string> {
  const { stdout } = await promisify(execFile)("kubectl", ["--kubeconfig", kubeconfig, ...args], {
    encoding: "utf8",
    timeout: 60_000,
  });
  return stdout;
}

/** What the cluster holds of runyard's, as kubectl lists it. */
async function kubectlObjects(
  kinds = "jobs,secrets,networkpolicies",
): Promise<Array<{ kind: string; metadata: { name: string; labels?: Record<string, string> } }>> {
  const out = await kubectl("get", kinds, "-n", namespace, "-o", "json");
  return (JSON.parse(out) as { items: never[] }).items;
}

function leftovers(): string[] {
  return ["jobs", "secrets", "networkpolicies", "pods"].flatMap((resource) =>
    k8s.list(resource, namespace).map((object) => `${resource}/${object.metadata.name}`),
  );
}

async function submit(body: Record<string, unknown>): Promise<string> {
  const submitted = await api<{ run_id: string }>(server.url, "POST", "/api/runs", {
    kind: "agent",
    ...body,
  });
  expect(submitted.status, JSON.stringify(submitted.body)).toBe(201);
  return submitted.body.run_id;
}

async function finishedOf(runId: string): Promise<Extract<RunEvent, { type: "run.finished" }>> {
  await waitForRun(server.url, runId, isFinal, 150_000);
  const events = await readEvents(server.url, runId);
  const finished = events.at(-1);
  if (finished?.type !== "run.finished")
    throw new Error(`no run.finished: ${JSON.stringify(events.slice(-3))}`);
  return finished;
}

/** The running pod of a run's turn, once its container runs (as the cluster's store records it). */
async function runningPod(runId: string): Promise<string> {
  const pod = await nextObject(
    k8s,
    "pods",
    namespace,
    (p) =>
      p.metadata.labels?.["runyard.dev/run-id"] === runId &&
      (p as { status?: { phase?: string } }).status?.phase === "Running",
  );
  return pod.metadata.name;
}

/** The pod of a run's turn, in whatever phase, once the cluster holds it. */
async function podOf(runId: string): Promise<string> {
  const pod = await nextObject(
    k8s,
    "pods",
    namespace,
    (p) => p.metadata.labels?.["runyard.dev/run-id"] === runId,
  );
  return pod.metadata.name;
}

/** Once nothing of runyard's is left in the namespace: on the change that removes the last. */
async function nothingLeft(timeoutMs: number): Promise<void> {
  await storeHolds(
    k8s,
    `nothing left in ${namespace} (${leftovers().join(", ")})`,
    () => leftovers().length === 0,
    timeoutMs,
  );
  expect(leftovers()).toEqual([]);
}

describe.skipIf(!haveDocker || !claude)("agents as Kubernetes Jobs", () => {
  beforeAll(async () => {
    root = tempDir("runyard-k8s-agents-");
    // The agent image with the Claude Code CLI copied in at the path the runner has it.
    image = await kubernetesAgentImage([claude as string]);
    model = await startModelServer({ conversations: [] });
    server = await startTestServer();
    ({ k8s, kubeconfig, runner, restart } = await startKubeAgentRunner({
      root,
      namespace,
      image,
      serverUrl: server.url,
      id: "k8s-runner",
      // Short, for the tests of a pull that fails and a pod no node takes; a pod here is on its
      // node as soon as it is made.
      extraConfig: ["k8s_pull_timeout: 1s", "k8s_schedule_timeout: 2s"],
      env: {
        PATH: `${dirname(claude as string)}:${process.env.PATH}`,
        ANTHROPIC_BASE_URL: model.url,
        ANTHROPIC_API_KEY: apiKey,
        OPENAI_BASE_URL: `${model.url}/v1`,
        OPENAI_API_KEY: apiKey,
        CLAUDE_CODE_MAX_RETRIES: "0",
      },
    }));
  }, 400_000);

  afterAll(async () => {
    await runner?.kill();
    await server?.proc.kill();
    await model?.stop();
    await k8s?.close();
  }, 120_000);

  it("runs Claude Code in a pod: it writes, the runner tests, commits and pushes, with the tokens as in process mode", async () => {
    model.setScript({
      conversations: [
        {
          match: (r) =>
            r.path === "/v1/messages" && ((r.body as { tools?: unknown[] }).tools?.length ?? 0) > 0,
          turns: [
            {
              toolCalls: [{ name: "Write", input: { file_path: "hello.py", content: printHello } }],
              usage: { input_tokens: 120, output_tokens: 30 },
            },
            { text: "Wrote hello.py.", usage: { input_tokens: 150, output_tokens: 10 } },
          ],
        },
        { turns: [{ text: "A title" }] },
      ],
    });
    const bare = seedBareRepo(join(root, "claude.git"));
    const runId = await submit({
      agent: "claude_code",
      title: "Add hello.py",
      prompt: "Create hello.py that prints hello.",
      repo: { url: bare, push: true },
      tests: { command: "python3 hello.py | grep -qx hello" },
    });
    const finished = await finishedOf(runId);
    expect(finished.status, `${JSON.stringify(finished.error)}\n${runner.output().slice(-3000)}`).toBe(
      "success",
    );
    const branch = `runyard/${runId}-claude_code`;
    expect(finished.agents?.[0]).toMatchObject({ agent: "claude_code", pushed: true, branch });
    expect(git(bare, "show", `${branch}:hello.py`)).toBe(printHello);
    expect(finished.agents?.[0]).toMatchObject({ input_tokens: 270, output_tokens: 40 });
    expect(leftovers()).toEqual([]);
  }, 200_000);

  it("runs the built-in loop's commands in pods, as the runner's non-root user of the pod, /tmp in memory, no other task's folder in sight", async () => {
    // Another task's file in the runner's workspace folder (its working folder too), beside the
    // worktree of this one: a pod sees its own worktree, nothing else of the folder.
    const other = join(root, "claim", "workspaces", "other-task");
    mkdirSync(other, { recursive: true });
    writeFileSync(join(other, "notes.txt"), "not yours\n");
    model.setScript({
      conversations: [
        {
          match: (r) =>
            r.path === "/v1/chat/completions" && ((r.body as { tools?: unknown[] }).tools?.length ?? 0) > 0,
          turns: [
            {
              toolCalls: [
                {
                  name: "run_command",
                  input: {
                    command: `printf '${printHello.trimEnd()}\\n' > hello.py; echo "uid=$(id -u) home=$HOME"; grep ' /tmp ' /proc/mounts; cat ${join(other, "notes.txt")} 2>&1 || true`,
                  },
                },
              ],
            },
            { text: "Done.", usage: { input_tokens: 40, output_tokens: 4 } },
          ],
        },
        { turns: [{ text: "A title" }] },
      ],
    });
    const bare = seedBareRepo(join(root, "loop.git"));
    const runId = await submit({ agent: "openai", prompt: "add hello.py", repo: { url: bare, push: true } });
    const jobs = new Set<string>();
    const look = (change: {
      object: { kind: string; metadata: { name: string; labels?: Record<string, string> } };
    }) => {
      const { object } = change;
      if (object.kind === "Job" && object.metadata.labels?.["runyard.dev/run-id"] === runId)
        jobs.add(object.metadata.name);
    };
    k8s.cluster.store.listeners.push(look);
    const finished = await finishedOf(runId).finally(() =>
      k8s.cluster.store.listeners.splice(k8s.cluster.store.listeners.indexOf(look), 1),
    );
    const events = await readEvents(server.url, runId);
    const output = events.flatMap((e) => (e.type === "agent.tool_result" ? [e.output] : [])).join("\n");
    expect(finished.status, `${JSON.stringify(finished.error)}\n${output}`).toBe("success");
    expect(output).toContain("uid=65534 home=/home/runyard");
    expect(output).not.toContain("not yours");
    // The pod's /tmp is an in-memory emptyDir of 1 GiB, as docs/agents.md says.
    expect(output).toMatch(/^tmpfs \/tmp tmpfs .*size=1048576k/m);
    // The file was written by the command, in its Job's pod, and committed from the claim.
    expect(jobs.size).toBe(1);
    expect(git(bare, "show", `runyard/${runId}-openai:hello.py`)).toBe(printHello);
    expect(leftovers()).toEqual([]);
  }, 200_000);

  it("fails a turn whose command cannot start, with the cluster's reason, for the built-in loop and a CLI alike", async () => {
    for (const agent of ["openai", "claude_code"]) {
      model.setScript({
        conversations: [
          {
            match: (r) => ((r.body as { tools?: unknown[] }).tools?.length ?? 0) > 0,
            turns: [
              { toolCalls: [{ name: "run_command", input: { command: "echo never" } }] },
              { text: "Done.", usage: { input_tokens: 40, output_tokens: 4 } },
            ],
          },
          { turns: [{ text: "A title" }] },
        ],
      });
      // The API refuses the turn's Job, as a Role that lost `create jobs` would.
      k8s.faults.failRequests(403, 1, { verb: "create", resource: "jobs", namespace });
      const runId = await submit({ agent, prompt: "run a command" });
      const finished = await finishedOf(runId);
      expect(finished.status, agent).toBe("failed");
      expect(finished.error, agent).toMatchObject({
        code: "KUBE_FORBIDDEN",
        hint: expect.stringContaining("runner-role.yaml"),
      });
      expect(leftovers()).toEqual([]);
    }
  }, 200_000);

  it("reads a command's whole output from its pod when the API ends the followed log early", async () => {
    model.setScript({
      conversations: [
        {
          match: (r) =>
            r.path === "/v1/chat/completions" && ((r.body as { tools?: unknown[] }).tools?.length ?? 0) > 0,
          turns: [
            { toolCalls: [{ name: "run_command", input: { command: "echo first-line; echo last-line" } }] },
            { text: "Done.", usage: { input_tokens: 40, output_tokens: 4 } },
          ],
        },
        { turns: [{ text: "A title" }] },
      ],
    });
    // The command's pod is the turn's first: its followed log ends at once, empty.
    k8s.faults.endFollowedLogs(1);
    const runId = await submit({ agent: "openai", prompt: "print two lines" });
    const finished = await finishedOf(runId);
    expect(finished.status, JSON.stringify(finished.error)).toBe("success");
    const events = await readEvents(server.url, runId);
    const output = events.flatMap((e) => (e.type === "agent.tool_result" ? [e.output] : [])).join("\n");
    expect(output).toContain("first-line\nlast-line");
    expect(leftovers()).toEqual([]);
  }, 200_000);

  it("shows the turn's Job, Secret and NetworkPolicy to kubectl while it runs, the key in the Secret only; cancel deletes them all", async () => {
    model.setScript({ conversations: [{ turns: [{ fail: { kind: "stall" } }] }] });
    const runId = await submit({ agent: "claude_code", prompt: "wait for the model" });
    const pod = await runningPod(runId);
    const objects = await kubectlObjects();
    const mine = objects.filter((o) => o.metadata.labels?.["runyard.dev/run-id"] === runId);
    expect(mine.map((o) => o.kind).sort()).toEqual(["Job", "NetworkPolicy", "Secret"]);
    const job = mine.find((o) => o.kind === "Job");
    expect(job?.metadata.labels).toMatchObject({
      "runyard.dev/run-id": runId,
      "runyard.dev/turn": "1",
      "runyard.dev/runner-id": "k8s-runner",
    });
    // Each of them and the pod name the install the server named: another install's runner of the
    // same id in this namespace leaves them alone at its start.
    const install = job?.metadata.labels?.["runyard.dev/install"];
    expect(install).toMatch(/^[0-9a-f]{16}$/);
    const pods = k8s
      .list("pods", namespace)
      .filter((o) => o.metadata.labels?.["runyard.dev/run-id"] === runId);
    expect(
      [...mine, ...pods].map((o) => [o.kind, o.metadata.labels?.["runyard.dev/install"]]).sort(),
    ).toEqual([
      ["Job", install],
      ["NetworkPolicy", install],
      ["Pod", install],
      ["Secret", install],
    ]);
    const specs = await kubectl("get", "jobs,pods", "-n", namespace, "-o", "json");
    expect(specs).toContain(pod);
    expect(specs).not.toContain(apiKey);
    expect(JSON.stringify(k8s.list("jobs", namespace))).not.toContain(apiKey);
    const secret = k8s.get("secrets", namespace, job?.metadata.name ?? "") as {
      data?: Record<string, string>;
    };
    expect(Buffer.from(secret.data?.ANTHROPIC_API_KEY ?? "", "base64").toString()).toBe(apiKey);

    await api(server.url, "POST", `/api/runs/${runId}/cancel`, {});
    const finished = await finishedOf(runId);
    expect(finished.status).toBe("canceled");
    expect(leftovers()).toEqual([]);
  }, 200_000);

  it("a turn over its timeout ends TIMEOUT within seconds, its Job and pod deleted", async () => {
    model.setScript({ conversations: [{ turns: [{ fail: { kind: "stall" } }] }] });
    // A timeout this short may end the turn before its pod runs: the pod is found in any phase.
    const runId = await submit({ agent: "claude_code", prompt: "wait", timeout_secs: 3 });
    const pod = await podOf(runId);
    const started = Date.now();
    const finished = await finishedOf(runId);
    expect(finished.error?.code, JSON.stringify(finished.error)).toBe("TIMEOUT");
    expect(Date.now() - started).toBeLessThan(60_000);
    expect(k8s.get("pods", namespace, pod)).toBeUndefined();
    expect(leftovers()).toEqual([]);
  }, 200_000);

  it("a turn silent past its stall limit ends AGENT_STALLED, its Job and pod deleted", async () => {
    model.setScript({ conversations: [{ turns: [{ fail: { kind: "stall" } }] }] });
    const runId = await submit({ agent: "claude_code", prompt: "wait", stall_secs: 2 });
    const pod = await podOf(runId);
    const finished = await finishedOf(runId);
    expect(finished.error?.code, JSON.stringify(finished.error)).toBe("AGENT_STALLED");
    expect(k8s.get("pods", namespace, pod)).toBeUndefined();
    expect(leftovers()).toEqual([]);
  }, 200_000);

  describe("faults of the cluster, each a typed error, nothing left behind", () => {
    it("an OOMKilled pod", async () => {
      model.setScript({ conversations: [{ turns: [{ fail: { kind: "stall" } }] }] });
      const runId = await submit({ agent: "claude_code", prompt: "wait" });
      await k8s.faults.oomKill(namespace, await runningPod(runId));
      const finished = await finishedOf(runId);
      expect(finished.error).toMatchObject({
        code: "KUBE_POD_OOM_KILLED",
        hint: expect.stringContaining("max_memory_mb"),
      });
      expect(leftovers()).toEqual([]);
    }, 200_000);

    it("an evicted pod", async () => {
      model.setScript({ conversations: [{ turns: [{ fail: { kind: "stall" } }] }] });
      const runId = await submit({ agent: "claude_code", prompt: "wait" });
      await k8s.faults.evict(namespace, await runningPod(runId));
      const finished = await finishedOf(runId);
      expect(finished.error?.code).toBe("KUBE_POD_EVICTED");
      expect(leftovers()).toEqual([]);
    }, 200_000);

    it("the Job deleted by someone else", async () => {
      model.setScript({ conversations: [{ turns: [{ fail: { kind: "stall" } }] }] });
      const runId = await submit({ agent: "claude_code", prompt: "wait" });
      await runningPod(runId);
      const job = k8s
        .list("jobs", namespace)
        .find((j) => j.metadata.labels?.["runyard.dev/run-id"] === runId);
      k8s.faults.deleteJob(namespace, job?.metadata.name ?? "");
      const finished = await finishedOf(runId);
      expect(finished.error?.code).toBe("KUBE_JOB_DELETED");
      await nothingLeft(30_000);
    }, 200_000);

    it("the API server gone mid-turn: the turn fails KUBE_UNREACHABLE, and once it is back nothing of the turn is left", async () => {
      model.setScript({ conversations: [{ turns: [{ fail: { kind: "stall" } }] }] });
      const runId = await submit({ agent: "claude_code", prompt: "wait" });
      await runningPod(runId);
      const job = k8s
        .list("jobs", namespace)
        .find((j) => j.metadata.labels?.["runyard.dev/run-id"] === runId);
      // The cluster's own backstop: the Job expires once finished, and owns its Secret and NetworkPolicy.
      expect(job).toMatchObject({ spec: { ttlSecondsAfterFinished: 600 } });
      for (const resource of ["secrets", "networkpolicies"]) {
        expect(k8s.get(resource, namespace, job?.metadata.name ?? "")?.metadata.ownerReferences).toEqual([
          expect.objectContaining({ kind: "Job", uid: job?.metadata.uid }),
        ]);
      }
      await k8s.faults.unreachable();
      let finished: Awaited<ReturnType<typeof finishedOf>>;
      try {
        finished = await finishedOf(runId);
        // The runner could delete nothing while the API was away.
        expect(leftovers()).not.toEqual([]);
      } finally {
        await k8s.faults.reachable();
      }
      expect(
        finished.error,
        `${JSON.stringify(finished.error)}\n${runner.output().slice(-3000)}`,
      ).toMatchObject({
        code: "KUBE_UNREACHABLE",
        message: expect.stringContaining(k8s.url),
      });
      await nothingLeft(90_000);
    }, 200_000);

    it("an image that cannot be pulled, within k8s_pull_timeout", async () => {
      k8s.faults.failImagePull(image, true);
      try {
        const started = Date.now();
        const runId = await submit({ agent: "claude_code", prompt: "never runs" });
        const finished = await finishedOf(runId);
        expect(finished.error).toMatchObject({
          code: "KUBE_IMAGE_PULL_FAILED",
          message: expect.stringContaining(image),
        });
        expect(Date.now() - started).toBeLessThan(60_000);
        expect(leftovers()).toEqual([]);
      } finally {
        k8s.faults.failImagePull(image, false);
      }
    }, 200_000);

    it("a pod no node takes, within k8s_schedule_timeout", async () => {
      k8s.faults.unschedulable(true);
      try {
        const runId = await submit({ agent: "claude_code", prompt: "never runs" });
        const finished = await finishedOf(runId);
        expect(finished.error).toMatchObject({
          code: "KUBE_UNSCHEDULABLE",
          message: expect.stringContaining("k8s_schedule_timeout"),
        });
        expect(leftovers()).toEqual([]);
      } finally {
        k8s.faults.unschedulable(false);
      }
    }, 200_000);
  });

  describe("a runner that cannot use its cluster refuses to start", () => {
    const config = () => {
      const file = join(root, "refused.k8s.yaml");
      writeFileSync(file, `execution_mode: kubernetes\nk8s_namespace: ${namespace}\nk8s_image: ${image}\n`);
      return file;
    };

    it("with the URL of an API server it cannot reach", async () => {
      const kubeconfigFile = join(root, "unreachable.kubeconfig");
      writeFileSync(
        kubeconfigFile,
        [
          "apiVersion: v1",
          "kind: Config",
          "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:9'}}]",
          "users: [{name: u, user: {token: t}}]",
          "contexts: [{name: x, context: {cluster: c, user: u}}]",
          "current-context: x",
          "",
        ].join("\n"),
      );
      const result = await runCli(["runner", "--server", server.url, "--token", "x", "--config", config()], {
        env: { KUBECONFIG: kubeconfigFile },
      });
      expect(result.code).not.toBe(0);
      expect(result.stderr).toContain("cannot reach the Kubernetes API server at https://127.0.0.1:9");
    }, 60_000);

    it("naming the verb and resource it lacks, and the Role that grants them", async () => {
      const token = k8s.addServiceAccount({ namespace, name: "no-rights", rules: [] });
      const result = await runCli(["runner", "--server", server.url, "--token", "x", "--config", config()], {
        env: { KUBECONFIG: k8s.writeKubeconfig(token, namespace, join(root, "no-rights.kubeconfig")) },
      });
      expect(result.code).not.toBe(0);
      expect(result.stderr).toContain("may not list jobs in namespace agents");
      expect(result.stderr).toContain("deploy/kubernetes/runner-role.yaml");
    }, 60_000);
  });

  it("a restarted runner deletes its own install's leftover turn Job, leaves another install's under its id alone, and names one of no install", async () => {
    model.setScript({ conversations: [{ turns: [{ fail: { kind: "stall" } }] }] });
    const runId = await submit({ agent: "claude_code", prompt: "wait for the model" });
    await runningPod(runId);
    const own = k8s.list("jobs", namespace).find((o) => o.metadata.labels?.["runyard.dev/run-id"] === runId);
    expect(own?.metadata.labels?.["runyard.dev/install"]).toMatch(/^[0-9a-f]{16}$/);
    await runner.kill("SIGKILL");
    const admin = new KubeConfig();
    admin.loadFromFile(k8s.writeKubeconfig(k8s.adminToken, namespace));
    const batch = admin.makeApiClient(BatchV1Api);
    // Another install in this namespace whose runner has the same id: its turn runs on; and one
    // made before Jobs named their install.
    const others: string[] = [];
    try {
      for (const install of ["0123456789abcdef", undefined]) {
        const name = `other-${install ?? "none"}`;
        const labels = {
          "runyard.dev/runner-id": "k8s-runner",
          "runyard.dev/run-id": `run_other_${name}`,
          "runyard.dev/job": name,
          ...(install ? { "runyard.dev/install": install } : {}),
        };
        await batch.createNamespacedJob({
          namespace,
          body: {
            metadata: { name, labels },
            spec: {
              backoffLimit: 0,
              template: {
                metadata: { labels },
                spec: {
                  restartPolicy: "Never",
                  // Its sleep, as PID 1, ignores SIGTERM: no grace to wait out when the test removes it.
                  terminationGracePeriodSeconds: 0,
                  containers: [{ name: "turn", image, command: ["sleep", "300"] }],
                },
              },
            },
          },
        });
        others.push(name);
      }
      runner = await restart();
      // Said once the welcome named the install and its own leftover was deleted.
      await runner.waitFor(`kubectl delete job -n ${namespace} other-none`, 60_000);
      expect(k8s.get("jobs", namespace, own?.metadata.name ?? "")).toBeUndefined();
      expect(others.map((name) => k8s.get("jobs", namespace, name)?.metadata.name)).toEqual(others);
    } finally {
      await api(server.url, "POST", `/api/runs/${runId}/cancel`, {});
      for (const name of others)
        await batch.deleteNamespacedJob({ name, namespace, propagationPolicy: "Foreground" }).catch(() => {});
    }
    await nothingLeft(60_000);
  }, 200_000);
});
