import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { destinationOf, modelDestinations, namesOwnEndpoint } from "./model-endpoints.js";

describe("a sandboxed agent's model destinations", () => {
  it("are the agent's default endpoint and the runner's settings, trusted", () => {
    expect(modelDestinations("claude_code", { ANTHROPIC_BASE_URL: "http://127.0.0.1:4000/v1" }, {})).toEqual([
      { host: "api.anthropic.com", port: 443 },
      { host: "127.0.0.1", port: 4000 },
    ]);
  });

  it("take a task's own endpoint only to public addresses", () => {
    expect(
      modelDestinations("openai", {}, { OPENAI_BASE_URL: "https://llm.example.com/v1", OTHER: "http://x" }),
    ).toEqual([
      { host: "api.openai.com", port: 443 },
      { host: "llm.example.com", port: 443, publicOnly: true },
    ]);
  });

  it("read Codex's endpoint from the runner's Codex config", () => {
    const home = mkdtempSync(join(tmpdir(), "codex-home-"));
    writeFileSync(
      join(home, "config.toml"),
      'model_provider = "corp"\n[model_providers.corp]\nbase_url = "http://10.1.2.3:8080/v1"\n',
    );
    expect(modelDestinations("codex", { CODEX_HOME: home }, {})).toContainEqual({
      host: "10.1.2.3",
      port: 8080,
    });
  });

  it("ignore what is not an http(s) URL", () => {
    expect(destinationOf("file:///etc/passwd")).toBeUndefined();
    expect(destinationOf("not a url")).toBeUndefined();
    expect(destinationOf("http://[::1]:9/")).toEqual({ host: "::1", port: 9 });
  });

  it("a task that names any setting read as an endpoint has its own, not only *_BASE_URL", () => {
    for (const name of ["OPENAI_BASE_URL", "OPENAI_API_BASE", "AZURE_OPENAI_ENDPOINT", "ANTHROPIC_API_URL"]) {
      expect(namesOwnEndpoint({ [name]: "https://llm.example.com" }), name).toBe(true);
      // Whatever counts as the task's own endpoint is what its egress lets through, and the other way.
      expect(modelDestinations("openai", {}, { [name]: "https://llm.example.com" })).toContainEqual({
        host: "llm.example.com",
        port: 443,
        publicOnly: true,
      });
    }
    expect(namesOwnEndpoint({ OPENAI_MODEL: "gpt-5", BASE_URL_NOTE: "x" })).toBe(false);
  });
});
