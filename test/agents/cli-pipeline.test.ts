/**
 * The whole task pipeline with each real agent CLI (Claude Code, Codex, OpenCode) on a real
 * server and runner: a repo task ends with the branch pushed, the diff artifact equal to what
 * the remote holds, the tokens and cost of the script, and no key anywhere; a canceled task
 * leaves no process and no worktree. The CLIs' own failure mapping (401, 429, stalls, resume) is
 * tested per adapter in `test/agents/<agent>.test.ts`.
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adapterFor } from "../../src/agents/registry.js";
import type { RunEvent } from "../../src/core/events.js";
import { agentCli } from "../helpers/agent-cli.js";
import { processesWith, tempDir } from "../helpers/cli.js";
import { git, seedBareRepo } from "../helpers/git-repos.js";
import { until } from "../helpers/processes.js";
import {
  adminToken,
  api,
  isFinal,
  type Proc,
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

const apiKey = "sk-pipeline-key-9e1f3a";
const hasTools = (r: RecordedRequest) => ((r.body as { tools?: unknown[] })?.tools?.length ?? 0) > 0;

interface Case {
  agent: string;
  /** The turns that write hello.py, then answer. */
  turns: Turn[];
  /** The requests of the agent's conversation (not side calls such as OpenCode's title). */
  match: (r: RecordedRequest) => boolean;
  env: (model: ModelServer) => Record<string, string>;
  /** A model the price table knows (Codex's own default has no list price yet). */
  model?: string;
  /** A command that runs long, as the agent's tool call, for the cancel test. */
  longCall: (marker: string) => Turn;
}

const printHello = 'print("hello")\n';
const cases: Case[] = [
  {
    agent: "claude_code",
    turns: [
      {
        toolCalls: [{ name: "Write", input: { file_path: "hello.py", content: printHello } }],
        usage: { input_tokens: 400, output_tokens: 40 },
      },
      { text: "Wrote hello.py.", usage: { input_tokens: 500, output_tokens: 6 } },
    ],
    match: (r) => r.path === "/v1/messages" && hasTools(r),
    env: (model) => ({ ANTHROPIC_BASE_URL: model.url, ANTHROPIC_API_KEY: apiKey }),
    longCall: (marker) => ({
      toolCalls: [{ name: "Bash", input: { command: `sleep 600; echo ${marker}`, timeout: 600000 } }],
    }),
  },
  {
    agent: "codex",
    turns: [
      {
        toolCalls: [
          {
            name: "exec_command",
            // No login shell (a machine's profile is not the test's business), and Codex hands back
            // a command still running after yield_time_ms (default 10 s): wait up to its 30 s.
            input: {
              cmd: `printf '${printHello.replaceAll('"', '\\"').trimEnd()}\\n' > hello.py`,
              login: false,
              yield_time_ms: 30000,
            },
          },
        ],
        usage: { input_tokens: 1000, output_tokens: 30 },
      },
      { text: "Wrote hello.py.", usage: { input_tokens: 1100, output_tokens: 5 } },
    ],
    match: (r) => r.path === "/v1/responses",
    model: "gpt-5.5",
    env: (model) => ({ OPENAI_BASE_URL: `${model.url}/v1`, OPENAI_API_KEY: apiKey }),
    longCall: (marker) => ({
      toolCalls: [{ name: "exec_command", input: { cmd: `sleep 600; echo ${marker}`, login: false } }],
    }),
  },
  {
    agent: "opencode",
    turns: [
      {
        toolCalls: [{ name: "write", input: { filePath: "hello.py", content: printHello } }],
        usage: { input_tokens: 300, output_tokens: 25 },
      },
      { text: "Wrote hello.py.", usage: { input_tokens: 350, output_tokens: 5 } },
    ],
    match: (r) => r.path === "/v1/chat/completions" && hasTools(r),
    env: (model) => ({ OPENAI_BASE_URL: `${model.url}/v1`, OPENAI_API_KEY: apiKey }),
    longCall: (marker) => ({
      toolCalls: [{ name: "bash", input: { command: `sleep 600; echo ${marker}`, description: "wait" } }],
    }),
  },
];

const clis = Object.fromEntries(
  cases.map(({ agent }) => {
    const pkg = adapterFor(agent)?.package;
    return [agent, pkg ? agentCli(agent, pkg.name, pkg.version, pkg.bin) : undefined];
  }),
);
const missing = Object.values(clis).some((path) => !path);

let server: TestServer;
let runner: Proc;
let root: string;

describe.skipIf(missing)("the task pipeline with each real agent CLI", () => {
  beforeAll(async () => {
    root = tempDir("runyard-pipeline-");
    server = await startTestServer();
    const path = Object.values(clis)
      .map((bin) => dirname(bin ?? ""))
      .join(":");
    runner = await startRunner(server.url, await runnerToken(server.url), {
      id: "pipeline",
      capacity: 3,
      env: {
        PATH: `${path}:${process.env.PATH}`,
        RUNYARD_WORKSPACE_DIR: join(root, "workspaces"),
        CLAUDE_CODE_MAX_RETRIES: "1",
      },
    });
  }, 60_000);

  afterAll(async () => {
    await runner?.kill();
    await server?.proc.kill();
  });

  async function artifact(runId: string, name: string): Promise<string> {
    const response = await fetch(new URL(`/api/runs/${runId}/artifacts/${name}`, server.url), {
      headers: { authorization: `Bearer ${adminToken}` },
    });
    return response.text();
  }

  describe.each(cases)("$agent", (c) => {
    let model: ModelServer;
    let bare: string;
    let runId: string;
    let events: RunEvent[];

    beforeAll(async () => {
      model = await startModelServer({
        conversations: [{ match: c.match, turns: c.turns }, { turns: [{ text: "A title" }] }],
      });
      bare = seedBareRepo(join(root, `${c.agent}.git`));
      const submitted = await api<{ run_id: string }>(server.url, "POST", "/api/runs", {
        kind: "agent",
        agent: c.agent,
        title: "Add hello.py",
        prompt: "Create hello.py that prints hello.",
        repo: { url: bare, push: true },
        tests: { command: "python3 hello.py | grep -qx hello" },
        env: c.env(model),
        ...(c.model ? { model: c.model } : {}),
      });
      expect(submitted.status, JSON.stringify(submitted.body)).toBe(201);
      runId = submitted.body.run_id;
      await waitForRun(server.url, runId, isFinal, 120_000);
      events = await readEvents(server.url, runId);
    }, 150_000);

    afterAll(async () => {
      await model?.stop();
    });

    it("pushes the branch with the change, in a commit that names the task", () => {
      const finished = events.at(-1);
      if (finished?.type !== "run.finished") throw new Error("no run.finished");
      expect(finished.status, JSON.stringify(finished.error)).toBe("success");
      const branch = `runyard/${runId}-${c.agent}`;
      expect(finished.agents?.[0]).toMatchObject({ agent: c.agent, pushed: true, branch });
      expect(git(bare, "show", `${branch}:hello.py`)).toBe(printHello);
      expect(git(bare, "log", "-1", "--format=%s", branch).trim()).toBe("Add hello.py");
    });

    it("keeps a diff artifact equal to what the remote holds", async () => {
      const branch = `runyard/${runId}-${c.agent}`;
      expect(await artifact(runId, `${c.agent}.diff`)).toBe(git(bare, "diff", "main", branch));
    });

    it("counts the script's tokens, and a cost", () => {
      const summary =
        events.at(-1)?.type === "run.finished"
          ? (events.at(-1) as { agents?: unknown[] }).agents?.[0]
          : undefined;
      const scripted = c.turns.reduce(
        (sum, turn) => ({
          input: sum.input + (turn.usage?.input_tokens ?? 0),
          output: sum.output + (turn.usage?.output_tokens ?? 0),
        }),
        { input: 0, output: 0 },
      );
      expect(summary).toMatchObject({ input_tokens: scripted.input, output_tokens: scripted.output });
      expect((summary as { cost_usd?: number }).cost_usd).toBeGreaterThan(0);
    });

    it("lets the API key out nowhere: events, artifacts, the server's files", async () => {
      const texts = [JSON.stringify(events)];
      for (const name of [`${c.agent}.diff`, `${c.agent}-transcript.jsonl`, `${c.agent}-tests.log`]) {
        texts.push(await artifact(runId, name));
      }
      const files = (dir: string): string[] =>
        readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
          entry.isDirectory() ? files(join(dir, entry.name)) : entry.isFile() ? [join(dir, entry.name)] : [],
        );
      for (const file of files(server.home)) texts.push(readFileSync(file).toString("latin1"));
      expect(texts.join("\n")).not.toContain(apiKey);
    });

    it("cancel leaves no process of the agent and no worktree", async () => {
      const marker = `runyard-pipeline-${c.agent}-${Date.now()}`;
      // The scripted server's record of the agent's own call: the command comes right after it.
      let called!: () => void;
      const asked = new Promise<void>((resolve) => {
        called = resolve;
      });
      const long = await startModelServer({
        conversations: [
          {
            match: (r) => {
              const mine = c.match(r);
              if (mine) called();
              return mine;
            },
            turns: [c.longCall(marker)],
          },
          { turns: [{ text: "A title" }] },
        ],
      });
      try {
        seedBareRepo(join(root, `${c.agent}-cancel.git`));
        const submitted = await api<{ run_id: string }>(server.url, "POST", "/api/runs", {
          kind: "agent",
          agent: c.agent,
          prompt: "wait",
          repo: { url: join(root, `${c.agent}-cancel.git`), push: true },
          env: c.env(long),
        });
        const id = submitted.body.run_id;
        await asked;
        await until(`the ${c.agent} command runs`, () => processesWith(marker).length > 0, 60_000);
        await api(server.url, "POST", `/api/runs/${id}/cancel`);
        const run = await waitForRun(server.url, id, isFinal, 30_000);
        expect(run.status).toBe("canceled");
        expect(processesWith(marker)).toEqual([]);
        expect(readdirSync(join(root, "workspaces", "pipeline", "worktrees"))).toEqual([]);
      } finally {
        await long.stop();
      }
    }, 120_000);
  });
});
