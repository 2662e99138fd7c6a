/**
 * A task's stdio MCP server with each agent CLI but Claude Code (whose test is mcp-setup.test.ts):
 * a real server and runner (the sandbox on, bubblewrap), the real Codex, Gemini, OpenCode and
 * Copilot CLIs against the scripted model server, and the tiny stdio MCP server of
 * test/fixtures/mcp/marker-server.mjs copied into the worktree from the runner's agent_files_dir.
 * The scripted model calls the server's tool by the name the CLI offered it under; the tool writes
 * a file in the worktree saying where it ran (its mount namespace: the turn's sandbox's), and its
 * answer comes back to the model in the CLI's next request.
 */
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, readlinkSync } from "node:fs";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adapterFor } from "../../src/agents/registry.js";
import type { RunEvent } from "../../src/core/events.js";
import { agentCli } from "../helpers/agent-cli.js";
import { tempDir } from "../helpers/cli.js";
import { seedBareRepo } from "../helpers/git-repos.js";
import {
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
import { type ModelServer, type RecordedRequest, startModelServer } from "../model-server/server.js";

const apiKey = "sk-mcp-clis-key-7a6b5c";

/** Every tool name a request offers, whatever its wire format nests them in. */
function offeredTools(r: RecordedRequest): string[] {
  const names: string[] = [];
  const walk = (value: unknown): void => {
    if (Array.isArray(value)) value.forEach(walk);
    else if (value !== null && typeof value === "object") {
      const object = value as Record<string, unknown>;
      if (typeof object.name === "string") names.push(object.name);
      // A namespace's members by their full name (Codex's MCP tools).
      if (object.type === "namespace" && Array.isArray(object.tools))
        for (const inner of object.tools as Array<{ name?: string }>)
          names.push(`${object.name}__${inner.name}`);
      for (const [key, inner] of Object.entries(object))
        if (key !== "parameters" && key !== "input_schema") walk(inner);
    }
  };
  walk((r.body as { tools?: unknown })?.tools);
  return names;
}

interface Case {
  agent: string;
  /** The name the CLI offers the marker server's `mark` tool under. */
  tool: string;
  /** The CLI's own requests (not a title or side call). */
  match: (r: RecordedRequest) => boolean;
  model?: string;
  /** The answer to the CLI's side calls (a title, a routing or next-speaker check). */
  side?: string;
}

const cases: Case[] = [
  // Codex offers a server's tools as a `namespace` tool `mcp__marker` (the scripted server calls
  // `mcp__marker__mark` as `{name: "mark", namespace: "mcp__marker"}`). For the models of its own
  // catalog (gpt-5.5) it defers every MCP tool behind `tool_search`, which the scripted server
  // does not speak; a model outside the catalog (a gateway's, as here) gets them up front.
  { agent: "codex", tool: "mcp__marker__mark", model: "gpt-4.1", match: (r) => r.path === "/v1/responses" },
  {
    agent: "gemini",
    tool: "mcp_marker_mark",
    match: (r) => r.path.includes(":streamGenerateContent") && offeredTools(r).length > 0,
    // Its side calls (which model routes the turn, who speaks next) want JSON: text makes it retry.
    side: '{"reasoning":"a small task","model_choice":"flash","next_speaker":"user"}',
  },
  {
    agent: "opencode",
    tool: "marker_mark",
    // Named, or OpenCode takes Google's provider for GEMINI_API_KEY of the same runner's env.
    model: "openai/gpt-5.5",
    match: (r) => r.path === "/v1/responses" && offeredTools(r).length > 0,
  },
  {
    agent: "copilot",
    tool: "marker-mark",
    model: "gpt-4.1",
    match: (r) => r.path === "/v1/chat/completions" && offeredTools(r).length > 0,
  },
];

const clis = Object.fromEntries(
  cases.map(({ agent }) => {
    const pkg = adapterFor(agent)?.package;
    return [agent, pkg ? agentCli(agent, pkg.name, pkg.version, pkg.bin) : undefined];
  }),
);
const missing = Object.values(clis).some((path) => path === undefined);

let server: TestServer;
let model: ModelServer;
let runner: Proc;
let root: string;

beforeAll(async () => {
  if (missing) return;
  root = tempDir("runyard-mcp-clis-");
  const files = join(root, "files");
  mkdirSync(files);
  copyFileSync(
    join(import.meta.dirname, "../fixtures/mcp/marker-server.mjs"),
    join(files, "marker-server.mjs"),
  );
  model = await startModelServer({ conversations: [] });
  server = await startTestServer();
  const path = [...new Set(Object.values(clis).map((cli) => dirname(cli!)))].join(":");
  runner = await startRunner(server.url, await runnerToken(server.url), {
    id: "mcp-clis-runner",
    env: {
      PATH: `${path}:${process.env.PATH}`,
      RUNYARD_WORKSPACE_DIR: join(root, "workspaces"),
      RUNYARD_AGENT_FILES_DIR: files,
      // Each CLI's endpoint and key, as its docs tell users.
      OPENAI_BASE_URL: `${model.url}/v1`,
      OPENAI_API_KEY: apiKey,
      GOOGLE_GEMINI_BASE_URL: model.url,
      GEMINI_API_KEY: apiKey,
      COPILOT_PROVIDER_BASE_URL: `${model.url}/v1`,
      COPILOT_PROVIDER_API_KEY: apiKey,
    },
  });
}, 120_000);

afterAll(async () => {
  await runner?.kill();
  await server?.proc.kill();
  await model?.stop();
});

describe.skipIf(missing)("a task's stdio MCP server with each agent CLI", () => {
  it.each(cases)(
    "$agent calls the marker server's tool, run inside the sandbox; its answer reaches the model",
    async (c) => {
      model.setScript({
        conversations: [
          {
            match: c.match,
            turns: [
              { toolCalls: [{ name: c.tool, input: { text: `hello from ${c.agent}` } }] },
              { text: "Done." },
            ],
          },
          { turns: [{ text: c.side ?? "A title" }] },
        ],
      });
      const before = model.requests.length;
      const bare = seedBareRepo(join(root, `${c.agent}.git`));
      const submitted = await api<{ run_id: string }>(server.url, "POST", "/api/runs", {
        kind: "agent",
        agent: c.agent,
        prompt: "mark the worktree",
        ...(c.model ? { model: c.model } : {}),
        repo: { url: bare, push: true, branch: "marked" },
        copy_files: ["marker-server.mjs"],
        mcp_servers: { marker: { command: "node", args: ["marker-server.mjs"], env: { MARK_ENV: c.agent } } },
      });
      expect(submitted.status, JSON.stringify(submitted.body)).toBe(201);
      const runId = submitted.body.run_id;
      const run = await waitForRun(server.url, runId, isFinal, 240_000);
      const events: RunEvent[] = await readEvents(server.url, runId);
      const asked = model.requests.slice(before).filter(c.match);
      const offered = asked.map(offeredTools);
      expect(
        run.status,
        JSON.stringify({ error: run.error, last: events.slice(-6), offered: offered[0] }),
      ).toBe("success");
      // The CLI offered the model the server's tool under the name the script calls.
      expect(offered[0], JSON.stringify(offered[0])).toContain(c.tool);
      // The tool's answer came back to the model in the CLI's next request.
      expect(asked.length).toBeGreaterThanOrEqual(2);
      expect(asked.at(-1)!.rawBody).toContain("marked in ");
      // The run's events show the call and its answer, as the run's page does.
      const said = events.flatMap((e) => (e.type === "notice" ? [e.message] : []));
      expect(said).toContain("MCP servers: marker (node)");
      expect(JSON.stringify(events.filter((e) => e.type === "agent.tool_result"))).toContain("marked in ");
      // What the tool wrote is on the pushed branch: it ran in the worktree, with the task's env,
      // in a mount namespace other than the test's (the turn's bubblewrap sandbox).
      const mark = JSON.parse(
        execFileSync("git", ["-C", bare, "show", "marked:mcp-was-here.txt"], { encoding: "utf8" }),
      ) as { text: string; mnt: string; env: string };
      expect(mark.text).toBe(`hello from ${c.agent}`);
      expect(mark.env).toBe(c.agent);
      expect(mark.mnt).not.toBe(readlinkSync("/proc/self/ns/mnt"));
    },
    300_000,
  );
});
