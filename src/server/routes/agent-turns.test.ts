import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Store } from "../../store/index.js";
import { openMemoryStore } from "../../store/sqlite.js";
import type { AgentRunSpec } from "../runs/agent-spec.js";
import { agentTurnOf, excerptWindow, laterTurns } from "./agent-turns.js";

let store: Store;
let submitted = 0;

beforeEach(async () => {
  store = await openMemoryStore({ warn: () => undefined });
});

afterEach(async () => {
  await store.close();
});

function agentRun(prompt: string, name = "a task", follows?: string) {
  const spec: AgentRunSpec = {
    agents: ["openai"],
    prompt,
    title: "a task",
    extra_args: [],
    env: {},
    secrets: [],
    cwd_confined: true,
    timeout_secs: 60,
    stall_secs: 60,
    mcp_servers: {},
    copy_files: [],
    labels: [],
    ...(follows ? { follow_up: { parent_run_id: follows, conversation: follows, turn: 2, agents: {} } } : {}),
  };
  // One second apart: runs list newest first, as submitted.
  const created_at = new Date(Date.UTC(2026, 0, 1) + 1000 * submitted++).toISOString();
  return store.runs.create({ kind: "agent", name, tenant_id: "acme", spec, created_at });
}

describe("an agent run's turn in a list", () => {
  it("shows the start of its prompt on one line", async () => {
    const run = await agentRun("  fix the\n\n  build\tplease  ");
    expect(agentTurnOf(run)?.excerpt).toBe("fix the build please");
  });

  it("cuts a long prompt at the excerpt's length", async () => {
    const run = await agentRun(`${"word ".repeat(100)}\nend`);
    const excerpt = agentTurnOf(run)?.excerpt ?? "";
    expect(excerpt).toHaveLength(160);
    expect(excerpt.endsWith("…")).toBe(true);
    expect(excerpt.startsWith("word word")).toBe(true);
  });

  it("reads only the start of a prompt, so a list of 256 KiB prompts stays quick", async () => {
    // Collapsing each whole prompt took 80 ms a run: a list of 500 held the server 40 s. A word
    // past the window is never looked at.
    const run = await agentRun(`${" ".repeat(excerptWindow)}late ${"x ".repeat(128 * 1024)}`);
    expect(agentTurnOf(run)?.excerpt).toBe("");
    const words = await agentRun("x ".repeat(128 * 1024));
    expect(agentTurnOf(words)?.excerpt).toBe(`${"x ".repeat(79)}x…`);
  });
});

describe("the turns after an agent run", () => {
  it("are found past a thousand other tasks' runs submitted since", async () => {
    const first = await agentRun("add hello.py", "add hello.py");
    const next = await agentRun("greet by name", "add hello.py", first.id);
    for (let i = 0; i < 1000; i++) await agentRun(`task ${i}`, `task ${i}`);
    expect((await laterTurns({ store }, first)).map((run) => run.id)).toEqual([next.id]);
  });

  it("are found without reading other tasks' runs, however long their prompts", async () => {
    const first = await agentRun("add hello.py", "add hello.py");
    for (let i = 0; i < 200; i++) await agentRun("x ".repeat(128 * 1024 - 8), "a teammate's task");
    // The store's answers, counted as they come back: each run read is decrypted and parsed whole.
    const read: string[] = [];
    const list = store.runs.list.bind(store.runs);
    const counted = {
      store: {
        ...store,
        runs: {
          ...store.runs,
          list: async (query: Parameters<typeof list>[0]) => {
            const page = await list(query);
            read.push(...page.runs.map((run) => run.name));
            return page;
          },
        },
      },
    };
    expect(await laterTurns(counted, first)).toEqual([]);
    // Reading the 200 others took a second and a half, on every GET /api/runs/:id of the tenant's
    // agent runs: now the task's own run is all that is read.
    expect(read).toEqual(["add hello.py"]);
  });
});
