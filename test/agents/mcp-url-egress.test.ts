/**
 * A task's URL MCP server and its sandbox's egress: a real server and runner whose agent turns run
 * in hardened containers (the only way out the runner's egress proxy), the real Claude Code CLI
 * against the scripted model server, and a small streamable-HTTP MCP server of the test's own on
 * another loopback address. The task that names the server calls its tool through its egress;
 * a task of another tenant's member, running at the same time on the same (shared) runner, that
 * does not name it is refused the same address.
 */
import { writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { claudeCodeAgent } from "../../src/agents/claude-code.js";
import type { RunEvent } from "../../src/core/events.js";
import { pinnedCli } from "../helpers/agent-turn.js";
import { agentBaseImage } from "../helpers/base-images.js";
import { tempDir } from "../helpers/cli.js";
import { requireDocker } from "../helpers/docker.js";
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
import { type GitHttpServer, startGitHttpServer } from "../workspace/git-http-server.js";

const haveDocker = await requireDocker();
const claude = pinnedCli(claudeCodeAgent);
const apiKey = "sk-mcp-url-key-4e3d2c";
const toolNames = (r: RecordedRequest) =>
  ((r.body as { tools?: Array<{ name: string }> }).tools ?? []).map((tool) => tool.name);
const offersWeb = (r: RecordedRequest) => toolNames(r).includes("mcp__web__mark");
const isTurn = (r: RecordedRequest) => r.path === "/v1/messages" && toolNames(r).length > 0;

let server: TestServer;
let model: ModelServer;
let runner: Proc;
let root: string;
let image: string;
let gitServer: GitHttpServer;
/** A member's token of another tenant than the admin's task. */
let globex: string;
/** The test's streamable-HTTP MCP server, and the tool calls it answered. */
let mcp: Server;
let mcpUrl = "";
const calls: string[] = [];
let connections = 0;

/** A streamable-HTTP MCP server (JSON answers, no sessions): one tool, `mark`. */
function startMcp(): Promise<void> {
  mcp = createServer((req, res) => {
    if (req.method !== "POST") {
      res.writeHead(405).end();
      return;
    }
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => {
      const message = JSON.parse(body) as { id?: number; method: string; params?: Record<string, unknown> };
      if (message.id === undefined) {
        res.writeHead(202).end();
        return;
      }
      const answer = (result: unknown) =>
        res
          .writeHead(200, { "content-type": "application/json" })
          .end(JSON.stringify({ jsonrpc: "2.0", id: message.id, result }));
      if (message.method === "initialize")
        answer({
          protocolVersion: (message.params?.protocolVersion as string) ?? "2025-06-18",
          capabilities: { tools: {} },
          serverInfo: { name: "web", version: "1.0.0" },
        });
      else if (message.method === "tools/list")
        answer({
          tools: [
            {
              name: "mark",
              description: "Records a mark.",
              inputSchema: { type: "object", properties: { text: { type: "string" } }, required: ["text"] },
            },
          ],
        });
      else if (message.method === "tools/call") {
        const text = String((message.params?.arguments as { text?: string })?.text);
        calls.push(text);
        answer({ content: [{ type: "text", text: `web server marked ${text}` }] });
      } else answer({});
    });
  });
  mcp.on("connection", () => connections++);
  return new Promise((resolve) =>
    mcp.listen(0, "127.0.0.3", () => {
      mcpUrl = `http://127.0.0.3:${(mcp.address() as AddressInfo).port}/mcp`;
      resolve();
    }),
  );
}

beforeAll(async () => {
  if (!haveDocker || !claude) return;
  root = tempDir("runyard-mcp-url-");
  image = await agentBaseImage();
  await startMcp();
  model = await startModelServer({ conversations: [] });
  // The server's `mcp_hosts:` lets a member name the address at submit; the runner's egress,
  // which lists nothing for the member's tenant, still refuses it when the agent connects.
  const config = join(root, "runyard.yaml");
  writeFileSync(config, 'mcp_hosts:\n  - "127.0.0.3"\n');
  server = await startTestServer(undefined, {}, undefined, ["--config", config]);
  seedBareRepo(join(root, "other.git"));
  gitServer = await startGitHttpServer({
    projectRoot: root,
    username: "x-access-token",
    password: "unused",
    anonymous: true,
  });
  globex = (
    await api<{ token: string }>(server.url, "POST", "/api/tokens", {
      kind: "user",
      name: "globex member",
      tenant_id: "globex",
    })
  ).body.token;
  runner = await startRunner(server.url, await runnerToken(server.url), {
    id: "mcp-url-runner",
    env: {
      // One runner serves both tenants' tasks, as a shared runner does.
      RUNYARD_SHARED: "1",
      PATH: `${dirname(claude)}:${process.env.PATH}`,
      RUNYARD_WORKSPACE_DIR: join(root, "workspaces"),
      RUNYARD_AGENT_SANDBOX_IMAGES: image,
      ANTHROPIC_BASE_URL: model.url,
      ANTHROPIC_API_KEY: apiKey,
      CLAUDE_CODE_MAX_RETRIES: "1",
    },
  });
}, 240_000);

afterAll(async () => {
  await runner?.kill();
  await server?.proc.kill();
  await model?.stop();
  mcp?.close();
  await gitServer?.close();
});

async function submit(body: Record<string, unknown>, token?: string): Promise<string> {
  const submitted = await api<{ run_id: string }>(
    server.url,
    "POST",
    "/api/runs",
    { kind: "agent", agent: "claude_code", sandbox: { image, memory: "1g" }, ...body },
    token,
  );
  expect(submitted.status, JSON.stringify(submitted.body)).toBe(201);
  return submitted.body.run_id;
}

describe.skipIf(!haveDocker || !claude)("a task's URL MCP server and its sandbox's egress", () => {
  it("the task that names it calls its tool; another tenant's task beside it, which does not, is refused its address", async () => {
    const reach = `curl -sS -m 5 -X POST ${"$"}MCP_URL || echo unreachable`;
    model.setScript({
      conversations: [
        {
          match: (r) => isTurn(r) && offersWeb(r),
          turns: [
            { toolCalls: [{ name: "mcp__web__mark", input: { text: "from the naming task" } }] },
            { text: "Done." },
          ],
        },
        {
          match: isTurn,
          turns: [
            { toolCalls: [{ name: "Bash", input: { command: reach.replace("$MCP_URL", mcpUrl) } }] },
            { text: "Done." },
          ],
        },
        { turns: [{ text: "A title" }] },
      ],
    });
    const named = await submit({
      prompt: "mark it",
      repo: { url: seedBareRepo(join(root, "named.git")), push: false },
      mcp_servers: { web: { url: mcpUrl } },
    });
    // A member of another tenant, whose task runs at the same time on the same runner.
    const other = await submit(
      { prompt: "reach it", repo: { url: gitServer.url("other.git"), push: false } },
      globex,
    );
    const [namedRun, otherRun] = await Promise.all([
      waitForRun(server.url, named, isFinal, 240_000),
      waitForRun(server.url, other, isFinal, 240_000),
    ]);
    const namedEvents: RunEvent[] = await readEvents(server.url, named);
    const otherEvents: RunEvent[] = await readEvents(server.url, other);
    expect(namedRun.status, JSON.stringify(namedRun.error ?? namedEvents.slice(-4))).toBe("success");
    expect(otherRun.status, JSON.stringify(otherRun.error ?? otherEvents.slice(-4))).toBe("success");
    // The naming task's agent called the tool through its egress, and the answer reached the model.
    expect(calls).toEqual(["from the naming task"]);
    expect(model.requests.filter(offersWeb).at(-1)!.rawBody).toContain(
      "web server marked from the naming task",
    );
    // The other task was refused the same address, and said so.
    const notices = otherEvents.flatMap((e) => (e.type === "notice" ? [e.message] : []));
    const port = new URL(mcpUrl).port;
    expect(notices, JSON.stringify(otherEvents.filter((e) => e.type === "agent.tool_result"))).toContainEqual(
      expect.stringContaining(`egress to 127.0.0.3:${port} refused`),
    );
    expect(JSON.stringify(otherEvents.filter((e) => e.type === "agent.tool_result"))).not.toContain(
      "jsonrpc",
    );
    expect(connections).toBeGreaterThan(0);
    // The two turns overlapped: each started its agent before the other's ended.
    const span = (events: RunEvent[]) => {
      const at = (type: string) =>
        Date.parse(events.find((e) => e.type === type && "step" in e && e.step === "agent")!.ts);
      return [at("step.started"), at("step.finished")] as const;
    };
    const [a, b] = [span(namedEvents), span(otherEvents)];
    expect(a[0] < b[1] && b[0] < a[1], JSON.stringify({ a, b })).toBe(true);
  }, 480_000);
});

describe.skipIf(!haveDocker || !claude)("a member naming a URL MCP server on a private address", () => {
  it("is refused it by the runner's egress, even where the server's mcp_hosts: let it through at submit", async () => {
    const before = calls.length;
    const reach = `curl -sS -m 5 -X POST ${mcpUrl} || echo unreachable`;
    model.setScript({
      conversations: [
        {
          match: (r) => isTurn(r) && offersWeb(r),
          turns: [
            { toolCalls: [{ name: "mcp__web__mark", input: { text: "from a member" } }] },
            { text: "Done." },
          ],
        },
        {
          match: isTurn,
          turns: [{ toolCalls: [{ name: "Bash", input: { command: reach } }] }, { text: "Done." }],
        },
        { turns: [{ text: "A title" }] },
      ],
    });
    const runId = await submit(
      {
        prompt: "mark it",
        repo: { url: gitServer.url("other.git"), push: false },
        mcp_servers: { web: { url: mcpUrl } },
      },
      globex,
    );
    const run = await waitForRun(server.url, runId, isFinal, 240_000);
    const events = await readEvents(server.url, runId);
    // Whatever became of the turn, the member's agent never reached the server: no tool call
    // arrived, and its egress said the address was refused.
    expect(calls.length).toBe(before);
    const notices = events.flatMap((e) => (e.type === "notice" ? [e.message] : []));
    expect(notices, JSON.stringify({ error: run.error, last: events.slice(-4) })).toContainEqual(
      expect.stringContaining(`egress to 127.0.0.3:${new URL(mcpUrl).port} refused`),
    );
  }, 300_000);
});
