import { describe, expect, it } from "vitest";
import { knownAgentNames } from "../core/agent-names.js";
import { adapterFor, adapters, agentNames } from "./registry.js";

describe("the agent registry", () => {
  it("files each adapter under its own name, which is fit for the wire and a label", () => {
    for (const [key, adapter] of Object.entries(adapters)) {
      expect(adapter.name).toBe(key);
      expect(key).toMatch(/^[a-z][a-z0-9_]{0,39}$/);
    }
    expect(agentNames).toEqual(Object.keys(adapters));
    // A workflow's agent.run step is checked against this list where the file is parsed.
    expect([...knownAgentNames]).toEqual(agentNames);
  });

  it("knows no agent by a name it does not list, nor by an Object property", () => {
    expect(adapterFor("claude")).toBeUndefined();
    expect(adapterFor("toString")).toBeUndefined();
    expect(adapterFor("claude_code")?.name).toBe("claude_code");
  });
});
