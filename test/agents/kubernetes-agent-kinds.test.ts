import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cliAdapters } from "../../src/agents/registry.js";
import { agentCli } from "../helpers/agent-cli.js";
import { tempDir } from "../helpers/cli.js";
import { requireDocker } from "../helpers/docker.js";
import { git, seedBareRepo } from "../helpers/git-repos.js";
import { kubernetesAgentImage } from "../helpers/kube-agent-image.js";
import { startKubeAgentRunner } from "../helpers/kube-agent-runner.js";
import { onStoreChange } from "../helpers/kube-store-wait.js";
import {
  api,
  isFinal,
  type Proc,
  readEvents,
  startTestServer,
  type TestServer,
  waitForRun,
} from "../helpers/server.js";
import type { KubeObject } from "../k8s-api-server/objects.js";
import type { ScriptedKubernetes } from "../k8s-api-server/server.js";
import {
  type ModelServer,
  type RecordedRequest,
  startModelServer,
  type Turn,
} from "../model-server/server.js";

const haveDocker = await requireDocker();
const namespace = "agents";
const printHello = 'print("hello")\n';
const writeHello = "printf 'print(\"hello\")\\n' > hello.py";
const hasTools = (r: RecordedRequest) => ((r.body as { tools?: unknown[] })?.tools?.length ?? 0) > 0;

/** Each agent's own key, so a leak names whose it is. */
const keys = {
  openai: "sk-k8s-openai-key-3f9a1",
  gemini: "gemini-k8s-key-b27c4",
  copilot: "sk-k8s-copilot-key-9d0e2",
};

interface Case {
  agent: string;
  /** The agent's shell tool call that writes hello.py in its cwd. */
  write: Turn;
  /** The agent's own requests (a side call, a title or a next-speaker check, is not). */
  match: (r: RecordedRequest) => boolean;
  /** What the model answers a side call. */
  side: string;
  model?: string;
  /** The runner's model key this agent is given. */
  key: string;
}

const cases: Case[] = [
  {
    agent: "codex",
    key: keys.openai,
    write: {
      toolCalls: [{ name: "exec_command", input: { cmd: writeHello, login: false, yield_time_ms: 30000 } }],
    },
    match: (r) => r.path === "/v1/responses" && hasTools(r),
    side: "ok",
    // Codex's default model is sent its tools as `additional_tools` input items.
    model: "gpt-5.5",
  },
  {
    agent: "opencode",
    key: keys.openai,
    write: { toolCalls: [{ name: "bash", input: { command: writeHello, description: "write" } }] },
    // With OPENAI_BASE_URL set on the runner, OpenCode's own openai provider talks the Responses API.
    match: (r) => r.path === "/v1/responses" && hasTools(r),
    side: "A title",
    // Named: with Gemini's key on the runner too, OpenCode's own default would be a Google model.
    model: "openai/gpt-5.5",
  },
  {
    agent: "gemini",
    key: keys.gemini,
    write: { toolCalls: [{ name: "run_shell_command", input: { command: writeHello } }] },
    match: (r) => r.path.includes(":streamGenerateContent") && hasTools(r),
    side: '{"next_speaker":"user","reasoning":"done"}',
    model: "gemini-2.5-pro",
  },
  {
    agent: "copilot",
    key: keys.copilot,
    write: { toolCalls: [{ name: "bash", input: { command: writeHello, description: "write" } }] },
    match: (r) => r.path === "/v1/chat/completions" && hasTools(r),
    side: "ok",
    // A provider of one's own needs an explicit model.
    model: "gpt-4.1",
  },
];

/** Every agent CLI runyard has an adapter for, installed: the image holds them all. */
const clis: Record<string, string | undefined> = Object.fromEntries(
  cliAdapters().map(({ name, package: pkg }) => [
    name,
    pkg ? agentCli(name, pkg.name, pkg.version, pkg.bin) : undefined,
  ]),
);
const missing = !haveDocker || Object.values(clis).some((path) => path === undefined);

let k8s: ScriptedKubernetes;
let server: TestServer;
let model: ModelServer;
let runner: Proc;
let root: string;

function leftovers(): string[] {
  return ["jobs", "secrets", "networkpolicies", "pods"].flatMap((resource) =>
    k8s.list(resource, namespace).map((object) => `${resource}/${object.metadata.name}`),
  );
}

async function finishedOf(runId: string) {
  await waitForRun(server.url, runId, isFinal, 150_000);
  const events = await readEvents(server.url, runId);
  const finished = events.at(-1);
  if (finished?.type !== "run.finished")
    throw new Error(`no run.finished: ${JSON.stringify(events.slice(-3))}`);
  return { finished, events };
}

/**
 * Every Job, pod and Secret of the run as the API server held it (a Secret's values decoded),
 * each state the cluster's store records while the run goes on: each is deleted once its
 * command ended.
 */
function recordObjects(runId: string): { objects: Map<string, string>; stop: () => void } {
  const objects = new Map<string, string>();
  const resources = ["jobs", "pods", "secrets"];
  const note = (resource: string, object: KubeObject) => {
    if (object.metadata.labels?.["runyard.dev/run-id"] !== runId) return;
    const data = (object as { data?: Record<string, string> }).data ?? {};
    const decoded = Object.values(data).map((value) => Buffer.from(value, "base64").toString());
    objects.set(`${resource}/${object.metadata.name}`, JSON.stringify([object, decoded]));
  };
  for (const resource of resources) {
    for (const object of k8s.list(resource, namespace)) note(resource, object);
  }
  const stop = onStoreChange(k8s, (change) => {
    if (resources.includes(change.resource) && change.object.metadata.namespace === namespace) {
      note(change.resource, change.object);
    }
  });
  return { objects, stop };
}

/** Of `recorded`, the JSON of those of `resource`. */
const ofKind = (recorded: Map<string, string>, resource: string) =>
  [...recorded].flatMap(([key, json]) => (key.startsWith(`${resource}/`) ? [json] : []));

describe.skipIf(missing)("every agent kind as a Kubernetes Job", () => {
  beforeAll(async () => {
    root = tempDir("runyard-k8s-agent-kinds-");
    // In the registry's order: Claude Code's layer is the one kubernetes-agents.test.ts builds.
    const image = await kubernetesAgentImage(Object.values(clis) as string[], { certificates: true });
    model = await startModelServer({ conversations: [] });
    server = await startTestServer();
    const bins = [...new Set(Object.values(clis).map((cli) => dirname(cli as string)))];
    ({ k8s, runner } = await startKubeAgentRunner({
      root,
      namespace,
      image,
      serverUrl: server.url,
      id: "k8s-kinds-runner",
      env: {
        PATH: [...bins, process.env.PATH].join(":"),
        // Each CLI's endpoint and key as its docs tell users to set them.
        OPENAI_BASE_URL: `${model.url}/v1`,
        OPENAI_API_KEY: keys.openai,
        GOOGLE_GEMINI_BASE_URL: model.url,
        GEMINI_API_KEY: keys.gemini,
        COPILOT_PROVIDER_BASE_URL: `${model.url}/v1`,
        COPILOT_PROVIDER_API_KEY: keys.copilot,
      },
    }));
  }, 900_000);

  afterAll(async () => {
    await runner?.kill();
    await server?.proc.kill();
    await model?.stop();
    await k8s?.close();
  }, 120_000);

  for (const c of cases) {
    it(`${c.agent} runs in a pod: it writes, the runner commits and pushes, with the script's tokens`, async () => {
      model.setScript({
        conversations: [
          {
            match: c.match,
            turns: [
              { ...c.write, usage: { input_tokens: 300, output_tokens: 20 } },
              { text: "Wrote hello.py.", usage: { input_tokens: 410, output_tokens: 6 } },
            ],
          },
          { turns: [{ text: c.side, usage: { input_tokens: 0, output_tokens: 0 } }] },
        ],
      });
      const bare = seedBareRepo(join(root, `${c.agent}.git`));
      const submitted = await api<{ run_id: string }>(server.url, "POST", "/api/runs", {
        kind: "agent",
        agent: c.agent,
        title: "Add hello.py",
        prompt: "Create hello.py that prints hello.",
        repo: { url: bare, push: true },
        ...(c.model ? { model: c.model } : {}),
      });
      expect(submitted.status, JSON.stringify(submitted.body)).toBe(201);
      const runId = submitted.body.run_id;
      const recording = recordObjects(runId);
      const { finished, events } = await finishedOf(runId).finally(recording.stop);
      const said = events
        .filter((e) => e.type === "notice" || e.type.startsWith("agent."))
        .map((e) => JSON.stringify(e).slice(0, 400))
        .join("\n");
      const asked = model.requests.map((r) => `${r.path} tools=${hasTools(r)}`).join("\n");
      expect(
        finished.status,
        `${JSON.stringify(finished.error)}\n${said}\n${asked}\n${runner.output().slice(-3000)}`,
      ).toBe("success");
      const branch = `runyard/${runId}-${c.agent}`;
      expect(finished.agents?.[0]).toMatchObject({ agent: c.agent, pushed: true, branch });
      expect(git(bare, "show", `${branch}:hello.py`)).toBe(printHello);
      expect(finished.agents?.[0]).toMatchObject({ input_tokens: 710, output_tokens: 26 });
      // The turn ran as a Job whose pod ran, and no spec of either holds a model key: its own
      // is in the Job's Secret.
      const specs = [...ofKind(recording.objects, "jobs"), ...ofKind(recording.objects, "pods")];
      expect(ofKind(recording.objects, "jobs")).not.toEqual([]);
      expect(ofKind(recording.objects, "pods")).not.toEqual([]);
      for (const spec of specs) {
        for (const key of Object.values(keys)) expect(spec).not.toContain(key);
      }
      expect(ofKind(recording.objects, "secrets").join("\n")).toContain(c.key);
      // As users' clusters run it: non-root, a read-only root, every capability dropped.
      for (const json of ofKind(recording.objects, "pods")) {
        const [pod] = JSON.parse(json) as [
          { spec: { securityContext: unknown; containers: Array<{ securityContext: unknown }> } },
        ];
        expect(pod.spec.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 65534 });
        expect(pod.spec.containers[0]?.securityContext).toMatchObject({
          readOnlyRootFilesystem: true,
          capabilities: { drop: ["ALL"] },
        });
      }
      expect(leftovers()).toEqual([]);
    }, 200_000);
  }

  it("a member's turn in a pod holds no key of the runner's, its own agent's nor another's", async () => {
    // A member's CLI never holds the operator's keys: on a sandboxing runner their proxies add
    // them, which a Job's pod cannot reach; so the member's pod gets none at all.
    const made = await api<{ token: string }>(server.url, "POST", "/api/tokens", {
      kind: "user",
      name: "k8s-member",
    });
    expect(made.status, JSON.stringify(made.body)).toBe(201);
    model.setScript({
      conversations: [
        { match: cases[0]!.match, turns: [{ text: "Done." }] },
        { turns: [{ text: "ok", usage: { input_tokens: 0, output_tokens: 0 } }] },
      ],
    });
    const submitted = await api<{ run_id: string }>(
      server.url,
      "POST",
      "/api/runs",
      { kind: "agent", agent: "codex", model: "gpt-5.5", prompt: "say done" },
      made.body.token,
    );
    expect(submitted.status, JSON.stringify(submitted.body)).toBe(201);
    const runId = submitted.body.run_id;
    const recording = recordObjects(runId);
    const { finished } = await finishedOf(runId).finally(recording.stop);
    // Without a key of its task's own, its CLI says it has none.
    expect(finished.error?.message, JSON.stringify(finished.error)).toContain("OPENAI_API_KEY");
    const secrets = ofKind(recording.objects, "secrets");
    expect(secrets, JSON.stringify(finished)).not.toEqual([]);
    for (const key of Object.values(keys)) expect(secrets.join("\n")).not.toContain(key);
    for (const spec of recording.objects.values()) {
      for (const key of Object.values(keys)) expect(spec).not.toContain(key);
    }
    expect(leftovers()).toEqual([]);
  }, 200_000);
});
