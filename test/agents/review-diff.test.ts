/**
 * An agent run's diff for review, and a review comment that becomes the next turn: one shared,
 * sandboxed runner, the built-in `openai` agent against the scripted model server, a repo served
 * by real git over HTTP. A member of another tenant sees none of it; a teammate may read the
 * diff but not comment (a comment spends the submitter's keys).
 */

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { git } from "../helpers/git-repos.js";
import { api, isFinal, type TestServer, waitForRun } from "../helpers/server.js";
import { hasTools, type SharedAgentRunner, startSharedAgentRunner } from "../helpers/shared-agent-runner.js";
import type { ModelServer } from "../model-server/server.js";

interface DiffAnswer {
  run_id: string;
  agents: Array<{
    agent: string;
    omitted_files: number;
    note: string | null;
    files: Array<{
      path: string;
      status: string;
      additions: number;
      deletions: number;
      hunks: Array<{ lines: Array<{ kind: string; text: string; new_line: number | null }> }>;
    }>;
  }>;
}

let rig: SharedAgentRunner;
let server: TestServer;
let model: ModelServer;
let member: string;
let teammate: string;
let outsider: string;
let first: string;

const hello = 'def greet():\n    print("hello")\n\ngreet()\n';
const hello2 = 'def greet(name):\n    print("hello", name)\n\ngreet("you")\n';

beforeAll(async () => {
  rig = await startSharedAgentRunner({
    name: "review-diff",
    runnerId: "review-diff-runner",
    readme: "readme\n",
    apiKey: "sk-review-diff-7e1f",
  });
  ({ server, model, attacker: member, victim: outsider } = rig);
  teammate = (
    await api<{ token: string }>(server.url, "POST", "/api/tokens", {
      kind: "user",
      name: "acme teammate",
      tenant_id: "acme",
    })
  ).body.token;
  model.setScript({
    conversations: [
      {
        match: hasTools,
        turns: [
          { toolCalls: [{ name: "write_file", input: { path: "hello.py", content: hello }, id: "c1" }] },
          { text: "Added hello.py." },
          { toolCalls: [{ name: "write_file", input: { path: "hello.py", content: hello2 }, id: "c2" }] },
          { text: "greet takes a name now." },
        ],
      },
      { turns: [{ text: "Add hello" }] },
    ],
  });
  const submitted = await api<{ run_id: string }>(
    server.url,
    "POST",
    "/api/runs",
    { kind: "agent", agent: "openai", prompt: "add hello.py", repo: { url: rig.remoteUrl, push: false } },
    member,
  );
  expect(submitted.status, JSON.stringify(submitted.body)).toBe(201);
  first = submitted.body.run_id;
  const done = await waitForRun(server.url, first, isFinal, 180_000);
  expect(done.status, JSON.stringify(done.error)).toBe("success");
}, 300_000);

afterAll(async () => {
  await rig?.stop();
});

describe("an agent run's diff for review", () => {
  it("gives each agent's files with +/- counts and numbered lines", async () => {
    const diff = await api<DiffAnswer>(server.url, "GET", `/api/runs/${first}/diff`, undefined, member);
    expect(diff.status, JSON.stringify(diff.body)).toBe(200);
    expect(diff.body.agents.map((a) => a.agent)).toEqual(["openai"]);
    const [agent] = diff.body.agents;
    expect(agent?.omitted_files).toBe(0);
    expect(agent?.note).toBeNull();
    const file = agent?.files.find((f) => f.path === "hello.py");
    expect(file).toMatchObject({ status: "added", additions: 4, deletions: 0 });
    const lines = file?.hunks.flatMap((h) => h.lines) ?? [];
    expect(lines.map((l) => [l.kind, l.new_line, l.text])).toEqual([
      ["add", 1, "def greet():"],
      ["add", 2, '    print("hello")'],
      ["add", 3, ""],
      ["add", 4, "greet()"],
    ]);
  });

  it("is a teammate's to read, and another tenant's member gets 404 for the diff and the comment", async () => {
    expect((await api(server.url, "GET", `/api/runs/${first}/diff`, undefined, teammate)).status).toBe(200);
    const diff = await api<{ error: { code: string } }>(
      server.url,
      "GET",
      `/api/runs/${first}/diff`,
      undefined,
      outsider,
    );
    expect(diff.status).toBe(404);
    expect(diff.body.error.code).toBe("NOT_FOUND");
    const comment = await api(
      server.url,
      "POST",
      `/api/runs/${first}/review-comments`,
      { path: "hello.py", line: 1, text: "take a name" },
      outsider,
    );
    expect(comment.status).toBe(404);
  });

  it("refuses a teammate's comment (403) and a comment on a file the change did not touch (400)", async () => {
    const asked = model.requests.length;
    const byTeammate = await api<{ error: { code: string } }>(
      server.url,
      "POST",
      `/api/runs/${first}/review-comments`,
      { path: "hello.py", line: 1, text: "take a name" },
      teammate,
    );
    expect(byTeammate.status).toBe(403);
    expect(byTeammate.body.error.code).toBe("FORBIDDEN");
    const elsewhere = await api<{ error: { code: string; message: string; hint: string } }>(
      server.url,
      "POST",
      `/api/runs/${first}/review-comments`,
      { path: "README.md", text: "reword" },
      member,
    );
    expect(elsewhere.status).toBe(400);
    expect(elsewhere.body.error.message).toContain("README.md is not in the diff");
    expect(elsewhere.body.error.hint).toContain(`/api/runs/${first}/diff`);
    const noAgent = await api<{ error: { message: string } }>(
      server.url,
      "POST",
      `/api/runs/${first}/review-comments`,
      { agent: "codex", path: "hello.py", text: "x" },
      member,
    );
    expect(noAgent.status).toBe(400);
    expect(noAgent.body.error.message).toContain("no diff of agent codex");
    const empty = await api(
      server.url,
      "POST",
      `/api/runs/${first}/review-comments`,
      { path: "hello.py", line: 0, text: "" },
      member,
    );
    expect(empty.status).toBe(400);
    expect(model.requests.length).toBe(asked);
  });

  it("a comment on a line is the next turn, with the file and line in its prompt", async () => {
    const sent = await api<{ run_id: string; parent_run_id: string; prompt: string }>(
      server.url,
      "POST",
      `/api/runs/${first}/review-comments`,
      { agent: "openai", path: "hello.py", line: 1, text: "greet should take a name" },
      member,
    );
    expect(sent.status, JSON.stringify(sent.body)).toBe(201);
    expect(sent.body.parent_run_id).toBe(first);
    expect(sent.body.prompt).toContain("hello.py:1");
    const next = await waitForRun(server.url, sent.body.run_id, isFinal, 180_000);
    expect(next.status, JSON.stringify(next.error)).toBe("success");
    const last = model.requests.filter(hasTools).at(-1)?.rawBody ?? "";
    expect(last).toContain("Review comment on hello.py:1");
    expect(last).toContain("greet should take a name");
    // The next turn's own diff shows the change the comment asked for.
    const diff = await api<DiffAnswer>(server.url, "GET", `/api/runs/${next.run_id}/diff`, undefined, member);
    const lines = diff.body.agents[0]?.files
      .find((f) => f.path === "hello.py")
      ?.hunks.flatMap((h) => h.lines);
    expect(lines?.[0]).toMatchObject({ kind: "add", new_line: 1, text: "def greet(name):" });
    expect(git(rig.bare, "branch", "--list").trim()).toBe("* main");
  });

  it("links the turns both ways, gives each its prompt in full, and keeps the comment on the diff", async () => {
    const before = await api<DiffAnswer & { comments: unknown[] }>(
      server.url,
      "GET",
      `/api/runs/${first}/diff`,
      undefined,
      member,
    );
    const sent = before.body.comments;
    expect(sent).toEqual([
      expect.objectContaining({
        agent: "openai",
        path: "hello.py",
        line: 1,
        text: "greet should take a name",
      }),
    ]);
    const next = (sent[0] as { run_id: string }).run_id;
    const firstRun = await api<{ agent_turn: Record<string, unknown> }>(
      server.url,
      "GET",
      `/api/runs/${first}`,
      undefined,
      member,
    );
    expect(firstRun.body.agent_turn).toMatchObject({
      turn: 1,
      conversation: first,
      follows: null,
      prompt: "add hello.py",
      followed_by: [expect.objectContaining({ run_id: next, status: "success" })],
    });
    const nextRun = await api<{ agent_turn: Record<string, unknown> }>(
      server.url,
      "GET",
      `/api/runs/${next}`,
      undefined,
      member,
    );
    expect(nextRun.body.agent_turn).toMatchObject({
      turn: 2,
      conversation: first,
      follows: first,
      followed_by: [],
    });
    expect(nextRun.body.agent_turn.prompt).toContain(
      "Review comment on hello.py:1 (on openai's change):\ngreet should take a name",
    );
    // The list tells the turns apart: each run names its turn and the start of its prompt.
    const list = await api<{
      runs: Array<{ run_id: string; agent_turn?: { turn: number; excerpt: string } }>;
    }>(server.url, "GET", "/api/runs?kind=agent", undefined, member);
    const listed = list.body.runs.find((r) => r.run_id === next);
    expect(listed?.agent_turn).toMatchObject({
      turn: 2,
      excerpt: expect.stringContaining("greet should take a name"),
    });
    expect(listed?.agent_turn).not.toHaveProperty("prompt");
  });
});
