/**
 * Sandboxed agents through a real Docker engine: Claude Code, Codex, OpenCode and the built-in
 * loop each write, test and push from inside a hardened container whose only way out is the
 * runner's egress proxy, held to the model endpoint. Each agent is told to reach a listener on
 * another loopback address first: the run says the egress was refused, and the listener never
 * sees a connection. The model endpoint is the runner's (its env, as the CLIs' docs say), the
 * CLIs the runner's own, mounted read-only.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adapterFor } from "../../src/agents/registry.js";
import type { RunEvent } from "../../src/core/events.js";
import { DockerEngine } from "../../src/exec/docker/docker-engine.js";
import { agentCli } from "../helpers/agent-cli.js";
import { agentBaseImage } from "../helpers/base-images.js";
import { processesWith, tempDir } from "../helpers/cli.js";
import { busyboxImage, requireDocker } from "../helpers/docker.js";
import { git, seedBareRepo } from "../helpers/git-repos.js";
import { toolProcessRuns } from "../helpers/run-event.js";
import {
  api,
  isFinal,
  type Proc,
  type RunView,
  readEvents,
  runnerToken,
  startRunner,
  startTestServer,
  type TestServer,
  waitForRun,
} from "../helpers/server.js";
import {
  type ModelServer,
  type RecordedRequest,
  startModelServer,
  type Turn,
} from "../model-server/server.js";

const haveDocker = await requireDocker();
const engine = new DockerEngine();
const apiKey = "sk-sandboxed-key-51c0de";
const printHello = 'print("hello")\n';
const hasTools = (r: RecordedRequest) => ((r.body as { tools?: unknown[] })?.tools?.length ?? 0) > 0;

interface Case {
  agent: string;
  /** A shell call of the agent's own tool. */
  shell: (command: string) => Turn;
  write: Turn;
  match: (r: RecordedRequest) => boolean;
  /** The runner's env that points the agent at the model (as the agent's docs tell users). */
  env: (model: ModelServer) => Record<string, string>;
  model?: string;
}

const cases: Case[] = [
  {
    agent: "claude_code",
    shell: (command) => ({ toolCalls: [{ name: "Bash", input: { command } }] }),
    write: { toolCalls: [{ name: "Write", input: { file_path: "hello.py", content: printHello } }] },
    match: (r) => r.path === "/v1/messages" && hasTools(r),
    env: (model) => ({ ANTHROPIC_BASE_URL: model.url, ANTHROPIC_API_KEY: apiKey }),
  },
  {
    agent: "codex",
    shell: (cmd) => ({
      toolCalls: [{ name: "exec_command", input: { cmd, login: false, yield_time_ms: 30000 } }],
    }),
    write: {
      toolCalls: [
        {
          name: "exec_command",
          input: { cmd: "printf 'print(\"hello\")\\n' > hello.py", login: false, yield_time_ms: 30000 },
        },
      ],
    },
    match: (r) => r.path === "/v1/responses",
    model: "gpt-5.5",
    env: (model) => ({ OPENAI_BASE_URL: `${model.url}/v1`, OPENAI_API_KEY: apiKey }),
  },
  {
    agent: "opencode",
    shell: (command) => ({ toolCalls: [{ name: "bash", input: { command, description: "reach out" } }] }),
    // GPT-5 models get apply_patch rather than write from OpenCode: the shell writes the file.
    write: {
      toolCalls: [
        { name: "bash", input: { command: "printf 'print(\"hello\")\\n' > hello.py", description: "write" } },
      ],
    },
    // With OPENAI_BASE_URL set on the runner (not in the task), OpenCode's own openai provider
    // talks the Responses API.
    match: (r) => r.path === "/v1/responses" && hasTools(r),
    env: (model) => ({ OPENAI_BASE_URL: `${model.url}/v1`, OPENAI_API_KEY: apiKey }),
  },
  {
    agent: "openai",
    shell: (command) => ({ toolCalls: [{ name: "run_command", input: { command } }] }),
    write: { toolCalls: [{ name: "write_file", input: { path: "hello.py", content: printHello } }] },
    match: (r) => r.path === "/v1/chat/completions" && hasTools(r),
    env: (model) => ({ OPENAI_BASE_URL: `${model.url}/v1`, OPENAI_API_KEY: apiKey }),
  },
];

const clis = Object.fromEntries(
  cases.map(({ agent }) => {
    const pkg = adapterFor(agent)?.package;
    return [agent, pkg ? agentCli(agent, pkg.name, pkg.version, pkg.bin) : ""];
  }),
);
const missing = !haveDocker || Object.values(clis).some((path) => path === undefined);

let server: TestServer;
let image: string;
let root: string;
/** What must stay out of reach: a service on another loopback address, as on a private network. */
let inside: Server;
let insidePort = 0;
let insideConnections = 0;

/**
 * The built-in loop, sandboxed on a runner of its own (`name`, with `env` besides its model's),
 * runs `script` (made for its model server) as its one shell call on a fresh repo: the run, its
 * id and events, the tool's output, the repo, and what its model server was asked.
 */
async function builtInLoopShell(
  name: string,
  script: string | ((model: ModelServer) => string),
  push = false,
  env: Record<string, string> = {},
): Promise<{
  run: RunView;
  runId: string;
  events: RunEvent[];
  output: string;
  bare: string;
  asked: RecordedRequest[];
}> {
  const loop = cases[3]!;
  const model = await startModelServer({ conversations: [] });
  const command = typeof script === "string" ? script : script(model);
  model.setScript({
    conversations: [
      { match: loop.match, turns: [loop.shell(command), { text: "Done." }] },
      { turns: [{ text: "A title" }] },
    ],
  });
  const runner = await startRunner(server.url, await runnerToken(server.url), {
    id: `sandboxed-${name}`,
    env: {
      RUNYARD_WORKSPACE_DIR: join(root, `workspaces-${name}`),
      RUNYARD_AGENT_SANDBOX_IMAGES: image,
      ...env,
      ...loop.env(model),
    },
  });
  try {
    const bare = seedBareRepo(join(root, `${name}.git`));
    const submitted = await api<{ run_id: string }>(server.url, "POST", "/api/runs", {
      kind: "agent",
      agent: "openai",
      prompt: "try",
      repo: { url: bare, push },
      sandbox: { image },
    });
    const runId = submitted.body.run_id;
    const run = await waitForRun(server.url, runId, isFinal, 120_000);
    const events = await readEvents(server.url, runId);
    const output = events.flatMap((e) => (e.type === "agent.tool_result" ? [e.output] : [])).join("\n");
    return { run, runId, events, output, bare, asked: model.requests };
  } finally {
    await runner.kill();
    await model.stop();
  }
}

/** The labels of every container made for the run since `since` (unix seconds), from the engine's events. */
async function containersMade(runId: string, since: number): Promise<Array<Record<string, string>>> {
  const stream = await engine.docker.getEvents({
    since,
    until: Math.ceil(Date.now() / 1000),
    filters: { type: ["container"], event: ["create"], label: [`runyard.run=${runId}`] },
  });
  let text = "";
  for await (const chunk of stream) text += String(chunk);
  return text
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => (JSON.parse(line) as { Actor: { Attributes: Record<string, string> } }).Actor.Attributes);
}

describe.skipIf(missing)("sandboxed agents", () => {
  beforeAll(async () => {
    root = tempDir("runyard-sandboxed-");
    image = await agentBaseImage();
    server = await startTestServer();
    inside = createServer((_req, res) => res.end("inside"));
    inside.on("connection", () => insideConnections++);
    await new Promise<void>((resolve) => inside.listen(0, "127.0.0.2", resolve));
    insidePort = (inside.address() as AddressInfo).port;
  }, 180_000);

  afterAll(async () => {
    await server?.proc.kill();
    inside?.close();
  });

  describe.each(cases)("$agent", (c) => {
    let model: ModelServer;
    let runner: Proc;
    let bare: string;
    let runId: string;
    let events: RunEvent[];
    let submittedAt: number;

    beforeAll(async () => {
      const reach = `curl -sS -m 5 http://127.0.0.2:${insidePort}/ || echo unreachable`;
      model = await startModelServer({
        conversations: [
          {
            match: c.match,
            turns: [c.shell(reach), c.write, { text: "Wrote hello.py." }],
          },
          { turns: [{ text: "A title" }] },
        ],
      });
      const cli = clis[c.agent];
      runner = await startRunner(server.url, await runnerToken(server.url), {
        id: `sandboxed-${c.agent.replace("_", "-")}`,
        env: {
          PATH: `${cli ? `${dirname(cli)}:` : ""}${process.env.PATH}`,
          RUNYARD_WORKSPACE_DIR: join(root, `workspaces-${c.agent}`),
          RUNYARD_AGENT_SANDBOX_IMAGES: image,
          CLAUDE_CODE_MAX_RETRIES: "1",
          ...c.env(model),
        },
      });
      bare = seedBareRepo(join(root, `${c.agent}.git`));
      submittedAt = Math.floor(Date.now() / 1000);
      const submitted = await api<{ run_id: string }>(server.url, "POST", "/api/runs", {
        kind: "agent",
        agent: c.agent,
        title: "Add hello.py",
        prompt: `Reach http://127.0.0.2:${insidePort}/, then create hello.py that prints hello.`,
        repo: { url: bare, push: true },
        tests: { command: "python3 hello.py | grep -qx hello" },
        sandbox: { image, memory: "1g" },
        ...(c.model ? { model: c.model } : {}),
      });
      expect(submitted.status, JSON.stringify(submitted.body)).toBe(201);
      runId = submitted.body.run_id;
      await waitForRun(server.url, runId, isFinal, 150_000);
      events = await readEvents(server.url, runId);
    }, 200_000);

    afterAll(async () => {
      await runner?.kill();
      await model?.stop();
    });

    it("writes, tests and pushes from inside its container", () => {
      const finished = events.at(-1);
      if (finished?.type !== "run.finished") throw new Error("no run.finished");
      const said = events
        .filter((e) => e.type === "notice" || e.type === "step.output" || e.type.startsWith("agent."))
        .map((e) => ("message" in e ? e.message : "data" in e ? e.data : JSON.stringify(e).slice(0, 400)))
        .join("\n");
      const asked = model.requests.map(
        (r) => `${r.path} tools=${hasTools(r)} ${JSON.stringify(r.body).slice(0, 300)}`,
      );
      expect(finished.status, `${JSON.stringify(finished.error)}\n${said}\n${asked.join("\n")}`).toBe(
        "success",
      );
      const branch = `runyard/${runId}-${c.agent}`;
      expect(finished.agents?.[0]).toMatchObject({ agent: c.agent, pushed: true, branch });
      expect(git(bare, "show", `${branch}:hello.py`)).toBe(printHello);
    });

    it("is refused egress to anything but its model, and says so in the run", () => {
      const notices = events.flatMap((e) => (e.type === "notice" ? [e.message] : []));
      const results = events.flatMap((e) => (e.type === "agent.tool_result" ? [JSON.stringify(e)] : []));
      expect(notices, results.join("\n")).toContainEqual(
        expect.stringContaining(`egress to 127.0.0.2:${insidePort} refused`),
      );
      expect(insideConnections).toBe(0);
    });

    it("leaves no container behind, and each it made named its runner and its install", async () => {
      const left = await engine.docker.listContainers({
        all: true,
        filters: { label: [`runyard.run=${runId}`] },
      });
      expect(left).toEqual([]);
      const made = await containersMade(runId, submittedAt);
      expect(made.length).toBeGreaterThan(0);
      for (const labels of made) {
        expect(labels).toMatchObject({
          "runyard.runner": `sandboxed-${c.agent.replace("_", "-")}`,
          "runyard.install": expect.stringMatching(/^[0-9a-f]{16}$/),
        });
      }
    });
  });
  it("cannot make the runner's git run its commands, nor write the shared mirror: its repo's settings and the mirror's objects are read-only to it", async () => {
    // What the runner's own git reads after the turn, outside the sandbox: written by the agent,
    // `core.fsmonitor` in its repo's config would run as the runner on its `git add`.
    const marker = join(root, "escaped");
    const gitDir = 'gd=$(sed -n "s/^gitdir: //p" .git); c="$gd/$(cat "$gd/commondir")"';
    const tries = [
      gitDir,
      `printf '[core]\\n\\tfsmonitor = "id > ${marker}; false"\\n' >> "$c/config"; echo "config=$?"`,
      `echo 'id > ${marker}' > "$c/hooks/post-checkout"; echo "hooks=$?"`,
      'echo "gitdir: /tmp" > .git; echo "pointer=$?"',
      'echo /tmp > "$gd/commondir"; echo "commondir=$?"',
      'mv "$gd" "$gd.moved"; echo "move=$?"',
      'echo 0000000000000000000000000000000000000000 > "$c/refs/replace/x"; echo "replace=$?"',
      'echo /tmp >> "$c/objects/info/alternates"; echo "alternates=$?"',
      // The mirror its repo borrows objects from, shared by every task of the repository.
      'm=$(dirname "$(head -n 1 "$c/objects/info/alternates")"); ls "$m/objects" >/dev/null; echo "mirror-read=$?"',
      'mkdir -p "$m/objects/ab" && touch "$m/objects/ab/probe"; echo "mirror-objects=$?"',
      // What a commit of the agent's own writes stays writable.
      'mkdir -p "$c/objects/ab" && touch "$c/objects/ab/probe" && rm "$c/objects/ab/probe"; echo "objects=$?"',
      'touch "$c/refs/heads/probe" && rm "$c/refs/heads/probe"; echo "refs=$?"',
      'touch "$gd/probe" && rm "$gd/probe"; echo "worktree-git=$?"',
      "echo changed > changed.txt",
    ].join("\n");
    const { run, runId, output, bare } = await builtInLoopShell("git-settings", tries, true);
    expect(output).toMatch(/config=[1-9]/);
    expect(output).toMatch(/hooks=[1-9]/);
    expect(output).toMatch(/pointer=[1-9]/);
    expect(output).toMatch(/commondir=[1-9]/);
    expect(output).toMatch(/move=[1-9]/);
    expect(output).toMatch(/replace=[1-9]/);
    expect(output).toMatch(/alternates=[1-9]/);
    expect(output).toContain("mirror-read=0");
    expect(output).toMatch(/mirror-objects=[1-9]/);
    expect(output).toContain("objects=0");
    expect(output).toContain("refs=0");
    expect(output).toContain("worktree-git=0");
    // The runner committed and pushed the change with its own git, and ran nothing of the agent's.
    expect(run.status, output).toBe("success");
    expect(git(bare, "show", `runyard/${runId}-openai:changed.txt`)).toBe("changed\n");
    expect(existsSync(marker)).toBe(false);
  }, 150_000);

  it("can use git in its worktree although the runner's user owns it", async () => {
    // Under a root runner the container's user is nobody and the worktree is root's: git refuses
    // a repository of another owner ("dubious ownership") unless told the folder is safe.
    const { run, output } = await builtInLoopShell(
      "git-use",
      'echo new > new.txt; git status --porcelain; echo "status=$?"; git log -1 --format=%s; echo "log=$?"',
    );
    expect(output).not.toContain("dubious ownership");
    expect(output).toContain("?? new.txt");
    expect(output).toContain("status=0");
    expect(output).toContain("log=0");
    expect(run.status, output).toBe("success");
  }, 150_000);

  it("reaches its model's endpoint, and not one the runner's env names for another program", async () => {
    // The runner's machine has an OpenTelemetry collector set for its own programs: a name like a
    // model endpoint's, a private address. No agent reads it as its model, so none reaches it.
    const collector = createServer((_req, res) => res.end("collector"));
    let collectorConnections = 0;
    collector.on("connection", () => collectorConnections++);
    await new Promise<void>((resolve) => collector.listen(0, "127.0.0.1", resolve));
    const collectorPort = (collector.address() as AddressInfo).port;
    try {
      const { run, events, output, asked } = await builtInLoopShell(
        "unrelated-endpoint",
        (model) =>
          [
            `curl -sS -m 5 -o /dev/null -w "collector=%{http_code}\\n" http://127.0.0.1:${collectorPort}/v1/traces`,
            `curl -sS -m 5 -o /dev/null -w "model=%{http_code}\\n" ${model.url}/v1/models`,
          ].join("; "),
        false,
        { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${collectorPort}` },
      );
      expect(run.status, output).toBe("success");
      expect(output).toContain("model=200");
      expect(asked.filter((r) => r.method === "GET" && r.path === "/v1/models")).toHaveLength(1);
      expect(output).toContain("collector=403");
      const notices = events.flatMap((e) => (e.type === "notice" ? [e.message] : []));
      expect(notices).toContainEqual(expect.stringContaining(`egress to 127.0.0.1:${collectorPort} refused`));
      expect(collectorConnections).toBe(0);
    } finally {
      collector.close();
    }
  }, 150_000);

  it("is shown the CLI's packages, never the folder a user installed them in", async () => {
    // A user ran `npm install @anthropic-ai/claude-code` in their home: the CLI lies in
    // ~/node_modules, beside their own files, which the sandbox must not show the agent.
    const home = join(root, "user-home");
    mkdirSync(home, { recursive: true });
    chmodSync(home, 0o755);
    writeFileSync(join(home, "credentials"), "aws_secret_access_key=AKIAHOMESECRET\n", { mode: 0o644 });
    execFileSync("cp", ["-al", dirname(dirname(clis.claude_code!)), join(home, "node_modules")]);
    const model = await startModelServer({
      conversations: [
        {
          match: cases[0]!.match,
          turns: [cases[0]!.shell(`cat ${home}/credentials || echo unreadable`), { text: "Done." }],
        },
        { turns: [{ text: "A title" }] },
      ],
    });
    const runner = await startRunner(server.url, await runnerToken(server.url), {
      id: "sandboxed-cli-home",
      env: {
        PATH: `${join(home, "node_modules", ".bin")}:${process.env.PATH}`,
        RUNYARD_WORKSPACE_DIR: join(root, "workspaces-cli-home"),
        RUNYARD_AGENT_SANDBOX_IMAGES: image,
        ...cases[0]!.env(model),
      },
    });
    try {
      const submitted = await api<{ run_id: string }>(server.url, "POST", "/api/runs", {
        kind: "agent",
        agent: "claude_code",
        prompt: "read it",
        repo: { url: seedBareRepo(join(root, "cli-home.git")), push: false },
        sandbox: { image },
      });
      const run = await waitForRun(server.url, submitted.body.run_id, isFinal, 120_000);
      const events = await readEvents(server.url, submitted.body.run_id);
      const output = events.flatMap((e) => (e.type === "agent.tool_result" ? [e.output] : [])).join("\n");
      // The CLI ran from the user's folder, inside the container, and saw nothing else of it.
      expect(run.status, output).toBe("success");
      expect(output).toContain("unreadable");
      expect(output).not.toContain("AKIAHOMESECRET");
    } finally {
      await runner.kill();
      await model.stop();
    }
  }, 150_000);

  // The built-in loop calls its model from the runner, outside the container and its egress
  // proxy: a member's OPENAI_BASE_URL that leads to a private address (here 127.0.0.2, standing
  // for the runner's network) was called all the same, with a POST the member shapes
  // (`http://host/any/path?q=` swallows the `/chat/completions` runyard appends), and the first
  // 500 characters of the answer came back in the run's error.
  it("calls no private address a member names as the built-in loop's endpoint", async () => {
    const member = (
      await api<{ token: string }>(server.url, "POST", "/api/tokens", { kind: "user", name: "loop member" })
    ).body.token;
    const runner = await startRunner(server.url, await runnerToken(server.url), {
      id: "sandboxed-loop-endpoint",
      env: {
        RUNYARD_WORKSPACE_DIR: join(root, "workspaces-loop-endpoint"),
        RUNYARD_AGENT_SANDBOX_IMAGES: image,
      },
    });
    const before = insideConnections;
    try {
      const submitted = await api<{ run_id: string }>(
        server.url,
        "POST",
        "/api/runs",
        {
          kind: "agent",
          agent: "openai",
          prompt: "anything",
          sandbox: { image },
          env: { OPENAI_BASE_URL: `http://127.0.0.2:${insidePort}/v1`, OPENAI_API_KEY: "sk-member-own" },
        },
        member,
      );
      expect(submitted.status, JSON.stringify(submitted.body)).toBe(201);
      const run = await waitForRun(server.url, submitted.body.run_id, isFinal, 120_000);
      expect(run.status).toBe("failed");
      expect(JSON.stringify(run.error)).toContain("an internal address");
    } finally {
      await runner.kill();
    }
    expect(insideConnections).toBe(before);
  }, 150_000);

  it("cannot read another run's sessions in the runner's agent state", async () => {
    // Two runs of the same agent on one runner (on a shared runner, of two tenants): the second
    // one's commands look for the first one's conversation in the agent's state folder.
    const secret = "launch-code-4711-do-not-share";
    const model = await startModelServer({
      conversations: [
        {
          match: (r) => cases[3]!.match(r) && JSON.stringify(r.body).includes("look around"),
          turns: [
            // The pattern does not match its own text, which this run's session holds.
            cases[3]!.shell(
              'grep -rlE "launch-code-47[1]1" "$RUNYARD_AGENT_STATE_DIR/.." /tmp /home 2>/dev/null; echo "searched"',
            ),
            { text: "Done." },
          ],
        },
        { match: cases[3]!.match, turns: [{ text: "Noted." }] },
        { turns: [{ text: "A title" }] },
      ],
    });
    const runner = await startRunner(server.url, await runnerToken(server.url), {
      id: "sandboxed-state",
      env: {
        RUNYARD_WORKSPACE_DIR: join(root, "workspaces-state"),
        RUNYARD_AGENT_SANDBOX_IMAGES: image,
        ...cases[3]!.env(model),
      },
    });
    try {
      const submit = async (prompt: string) => {
        const submitted = await api<{ run_id: string }>(server.url, "POST", "/api/runs", {
          kind: "agent",
          agent: "openai",
          prompt,
          sandbox: { image },
        });
        expect(submitted.status, JSON.stringify(submitted.body)).toBe(201);
        await waitForRun(server.url, submitted.body.run_id, isFinal, 120_000);
        return readEvents(server.url, submitted.body.run_id);
      };
      await submit(`Remember this: ${secret}.`);
      const events = await submit("look around");
      const output = events.flatMap((e) => (e.type === "agent.tool_result" ? [e.output] : [])).join("\n");
      expect(output).toContain("searched");
      expect(output).not.toMatch(/openai-sessions/);
    } finally {
      await runner.kill();
      await model.stop();
    }
  }, 150_000);

  it("Claude Code's follow-up resumes its session in a container: the session is kept in the conversation's state folder", async () => {
    const claude = cases[0]!;
    const model = await startModelServer({
      conversations: [
        { match: claude.match, turns: [{ text: "the first answer" }, { text: "the second answer" }] },
        { turns: [{ text: "A title" }] },
      ],
    });
    const runner = await startRunner(server.url, await runnerToken(server.url), {
      id: "sandboxed-claude-follow-up",
      env: {
        PATH: `${dirname(clis.claude_code!)}:${process.env.PATH}`,
        RUNYARD_WORKSPACE_DIR: join(root, "workspaces-claude-follow-up"),
        RUNYARD_AGENT_SANDBOX_IMAGES: image,
        CLAUDE_CODE_MAX_RETRIES: "1",
        ...claude.env(model),
      },
    });
    try {
      const first = await api<{ run_id: string }>(server.url, "POST", "/api/runs", {
        kind: "agent",
        agent: "claude_code",
        prompt: "remember the word pelican",
        sandbox: { image },
      });
      expect(first.status, JSON.stringify(first.body)).toBe(201);
      const done = await waitForRun(server.url, first.body.run_id, isFinal, 120_000);
      expect(done.status, JSON.stringify(done.error)).toBe("success");
      const next = await api<{ run_id: string }>(
        server.url,
        "POST",
        `/api/runs/${first.body.run_id}/messages`,
        {
          text: "what was the word?",
        },
      );
      expect(next.status, JSON.stringify(next.body)).toBe(201);
      const second = await waitForRun(server.url, next.body.run_id, isFinal, 120_000);
      expect(second.status, JSON.stringify(second.error)).toBe("success");
      const history = JSON.stringify(model.requests.filter(claude.match).at(-1)?.body);
      expect(history).toContain("remember the word pelican");
      expect(history).toContain("the first answer");
      expect(history).toContain("what was the word?");
    } finally {
      await runner.kill();
      await model.stop();
    }
  }, 300_000);

  it("a member's Claude Code turn in a container calls its model through the runner's proxy, which adds the key its CLI and shell never hold", async () => {
    const claude = cases[0]!;
    // The container's shell looks for the runner's key in its env and its pid 1's.
    const probe = `{ env; tr '\\0' '\\n' < /proc/1/environ; } 2>/dev/null | grep -qF '${apiKey}' && echo "LE""AK-key" || echo "no""-key"; echo "base=$ANTHROPIC_BASE_URL"`;
    const model = await startModelServer({
      conversations: [
        { match: claude.match, turns: [claude.shell(probe), { text: "Done." }] },
        { turns: [{ text: "A title" }] },
      ],
    });
    const member = (
      await api<{ token: string }>(server.url, "POST", "/api/tokens", { kind: "user", name: "claude member" })
    ).body.token;
    const runner = await startRunner(server.url, await runnerToken(server.url), {
      id: "sandboxed-claude-member",
      env: {
        PATH: `${dirname(clis.claude_code!)}:${process.env.PATH}`,
        RUNYARD_WORKSPACE_DIR: join(root, "workspaces-claude-member"),
        RUNYARD_AGENT_SANDBOX_IMAGES: image,
        CLAUDE_CODE_MAX_RETRIES: "1",
        ...claude.env(model),
      },
    });
    try {
      const submitted = await api<{ run_id: string }>(
        server.url,
        "POST",
        "/api/runs",
        { kind: "agent", agent: "claude_code", prompt: "look around", sandbox: { image } },
        member,
      );
      expect(submitted.status, JSON.stringify(submitted.body)).toBe(201);
      const run = await waitForRun(server.url, submitted.body.run_id, isFinal, 120_000);
      const events = JSON.stringify(await readEvents(server.url, submitted.body.run_id));
      expect(run.status, events).toBe("success");
      const calls = model.requests.filter(claude.match);
      expect(calls.length).toBeGreaterThan(0);
      for (const call of calls) expect(call.headers["x-api-key"]).toBe(apiKey);
      expect(events).not.toContain("LEAK-key");
      expect(events).toContain("no-key");
      expect(events).toContain("base=http://model-key-proxy.runyard.internal:");
    } finally {
      await runner.kill();
      await model.stop();
    }
  }, 300_000);

  it("cancel stops the agent's container and removes it", async () => {
    const marker = `runyard-sandboxed-cancel-${Date.now()}`;
    const model = await startModelServer({
      conversations: [
        {
          match: cases[0]!.match,
          turns: [
            {
              toolCalls: [{ name: "Bash", input: { command: `sleep 600; echo ${marker}`, timeout: 600000 } }],
            },
          ],
        },
        { turns: [{ text: "A title" }] },
      ],
    });
    const cli = clis.claude_code;
    const runner = await startRunner(server.url, await runnerToken(server.url), {
      id: "sandboxed-cancel",
      env: {
        PATH: `${cli ? `${dirname(cli)}:` : ""}${process.env.PATH}`,
        RUNYARD_WORKSPACE_DIR: join(root, "workspaces-cancel"),
        RUNYARD_AGENT_SANDBOX_IMAGES: image,
        ...cases[0]!.env(model),
      },
    });
    try {
      const submitted = await api<{ run_id: string }>(server.url, "POST", "/api/runs", {
        kind: "agent",
        agent: "claude_code",
        prompt: "wait",
        repo: { url: seedBareRepo(join(root, "cancel.git")), push: true },
        sandbox: { image },
      });
      const id = submitted.body.run_id;
      const containers = () =>
        engine.docker.listContainers({ all: true, filters: { label: [`runyard.run=${id}`] } });
      // The sleep runs once the agent's container is up and the model's tool call has reached it.
      await toolProcessRuns(server.url, id, marker, 90_000);
      expect(await containers()).toHaveLength(1);
      await api(server.url, "POST", `/api/runs/${id}/cancel`);
      const run = await waitForRun(server.url, id, isFinal, 30_000);
      expect(run.status).toBe("canceled");
      expect(await containers()).toEqual([]);
      expect(processesWith(marker)).toEqual([]);
    } finally {
      await runner.kill();
      await model.stop();
    }
  }, 150_000);
  describe("what a task's sandbox may ask of a runner", () => {
    let model: ModelServer;
    let runner: Proc;
    /** Another tenant's bot image, as `runyard bot` builds them, present on the runner's engine. */
    let botImage: string;

    beforeAll(async () => {
      botImage = await busyboxImage("runyard-bot-0sandboxtest:latest");
      model = await startModelServer({ conversations: [{ turns: [{ text: "Done." }] }] });
      runner = await startRunner(server.url, await runnerToken(server.url), {
        id: "sandboxed-allowed",
        env: {
          RUNYARD_WORKSPACE_DIR: join(root, "workspaces-allowed"),
          RUNYARD_AGENT_SANDBOX_IMAGES: image,
          RUNYARD_AGENT_SANDBOX_MAX_PIDS: "1024",
          ...cases[3]!.env(model),
        },
      });
    }, 120_000);

    afterAll(async () => {
      await runner?.kill();
      await model?.stop();
    });

    const refusedRun = async (sandbox: Record<string, unknown>) => {
      const submitted = await api<{ run_id: string }>(server.url, "POST", "/api/runs", {
        kind: "agent",
        agent: "openai",
        prompt: "look around",
        repo: { url: seedBareRepo(join(root, `allowed-${Date.now()}.git`)), push: false },
        sandbox,
      });
      expect(submitted.status, JSON.stringify(submitted.body)).toBe(201);
      const id = submitted.body.run_id;
      const run = await waitForRun(server.url, id, isFinal, 60_000);
      const events = await readEvents(server.url, id);
      const containers = await engine.docker.listContainers({
        all: true,
        filters: { label: [`runyard.run=${id}`] },
      });
      return { run, events, containers };
    };

    it("runs only in images its operator allows: another image on its engine ends the run before any container", async () => {
      const asked = model.requests.length;
      const { run, events, containers } = await refusedRun({ image: botImage });
      expect(run.status).toBe("failed");
      expect(run.error?.code, JSON.stringify(run.error)).toBe("AGENT_SANDBOX_IMAGE_NOT_ALLOWED");
      expect(run.error?.message).toBe(
        `the sandbox image "${botImage}" is not allowed on this runner; it allows ${image}`,
      );
      const prepare = events.find((e) => e.type === "step.finished" && e.step === "prepare");
      expect(prepare).toMatchObject({ status: "failed", error: { code: "AGENT_SANDBOX_IMAGE_NOT_ALLOWED" } });
      expect(JSON.stringify(prepare)).toContain("RUNYARD_AGENT_SANDBOX_IMAGES");
      expect(containers).toEqual([]);
      expect(model.requests.length).toBe(asked);
    });

    it("refuses a sandbox over its operator's ceilings, and the server refuses absurd limits at once", async () => {
      const { run, containers } = await refusedRun({ image, pids: 2048, cpus: 32 });
      expect(run.status).toBe("failed");
      expect(run.error?.code, JSON.stringify(run.error)).toBe("AGENT_SANDBOX_OVER_LIMIT");
      expect(run.error?.message).toContain(
        "pids 2048 is over this runner's ceiling of 1024 (RUNYARD_AGENT_SANDBOX_MAX_PIDS)",
      );
      expect(run.error?.message).toContain("cpus 32 is over this runner's ceiling of");
      expect(containers).toEqual([]);
      for (const sandbox of [
        { image, memory: "1000g" },
        { image, cpus: 65 },
        { image, pids: 100_000 },
      ]) {
        const answer = await api<{ error: { code: string; message: string } }>(
          server.url,
          "POST",
          "/api/runs",
          {
            kind: "agent",
            agent: "openai",
            prompt: "x",
            sandbox,
          },
        );
        expect(answer.status, JSON.stringify(sandbox)).toBe(400);
        expect(answer.body.error.code).toBe("INVALID_INPUT");
      }
    });
  });

  it("a member's tests get containers without a network: the server refuses host or a Docker network", async () => {
    const made = await api<{ token: string }>(server.url, "POST", "/api/tokens", {
      kind: "user",
      name: "sandboxed member",
      tenant_id: "acme",
    });
    expect(made.status, JSON.stringify(made.body)).toBe(201);
    const playbook = `name: checks
inventory: {hosts: {box: {executor: docker, image: ${image}, network: bridge}}}
steps:
  - name: probe
    command: "true"
`;
    for (const [tests, where] of [
      [{ command: "true", executor: { image, network: "host" } }, "tests.executor.network"],
      [
        { command: "true", executor: { image, network: "container:runyard-bot-x" } },
        "tests.executor.network",
      ],
      [{ playbook }, 'the tests playbook\'s host "box"'],
    ] as const) {
      const answer = await api<{ error: { code: string; message: string; hint: string } }>(
        server.url,
        "POST",
        "/api/runs",
        { kind: "agent", agent: "openai", prompt: "x", tests },
        made.body.token,
      );
      expect(answer.status, JSON.stringify(answer.body)).toBe(400);
      expect(answer.body.error.code).toBe("INVALID_INPUT");
      expect(answer.body.error.message).toContain(`${where} asks for the network`);
    }
    const none = await api<{ run_id: string }>(
      server.url,
      "POST",
      "/api/runs",
      {
        kind: "agent",
        agent: "openai",
        prompt: "x",
        tests: { command: "true", executor: { image, network: "none" } },
      },
      made.body.token,
    );
    expect(none.status, JSON.stringify(none.body)).toBe(201);
    await api(server.url, "POST", `/api/runs/${none.body.run_id}/cancel`);
  });
});
