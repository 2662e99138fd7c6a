import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Store } from "../../store/index.js";
import { openMemoryStore } from "../../store/sqlite.js";
import type { AgentRunSpec } from "../runs/agent-spec.js";
import { agentTurnOf } from "./agent-turns.js";

let store: Store;

beforeEach(async () => {
  store = await openMemoryStore({ warn: () => undefined });
});

afterEach(async () => {
  await store.close();
});

function agentRun(prompt: string) {
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
  };
  return store.runs.create({ kind: "agent", name: "a task", tenant_id: "acme", spec });
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

  it("reads only the start of a 256 KiB prompt of short words, so a list of them stays quick", async () => {
    const run = await agentRun("x ".repeat(128 * 1024 - 8));
    const started = performance.now();
    for (let i = 0; i < 20; i++) agentTurnOf(run);
    // Collapsing each whole prompt took 80 ms a run: a list of 500 held the server 40 s.
    expect(performance.now() - started).toBeLessThan(200);
  });
});
