import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  destinationOf,
  modelDestinations,
  namesOwnEndpoint,
  runnerEndpointSettings,
} from "./model-endpoints.js";

const agents = ["claude_code", "codex", "openai", "opencode", "gemini", "copilot"];
/** The runner's env of a machine that has other services' endpoints set, for other programs. */
const unrelated = {
  OTEL_EXPORTER_OTLP_ENDPOINT: "http://10.0.0.5:4318",
  GITHUB_API_URL: "https://ghe.corp.example/api/v3",
  VAULT_ENDPOINT: "http://10.0.0.6:8200",
  AWS_ENDPOINT: "http://10.0.0.7:4566",
  SOMETHING_API_URL: "http://10.0.0.8:80",
  PAYMENTS_API_BASE: "http://10.0.0.9:80",
};

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

  it("open nothing for a runner's env set for other programs, whichever agent runs", () => {
    for (const agent of agents) {
      const hosts = modelDestinations(agent, unrelated, {}).map((d) => d.host);
      expect(
        hosts.filter((host) => host.startsWith("10.") || host === "ghe.corp.example"),
        agent,
      ).toEqual([]);
    }
  });

  it("open each agent's own settings in the runner's env, where they point", () => {
    const own: Record<string, string[]> = {
      claude_code: ["ANTHROPIC_BASE_URL", "ANTHROPIC_BEDROCK_BASE_URL", "ANTHROPIC_VERTEX_BASE_URL"],
      codex: ["OPENAI_BASE_URL", "CODEX_OSS_BASE_URL"],
      openai: ["OPENAI_BASE_URL"],
      opencode: ["OPENAI_BASE_URL", "ANTHROPIC_BASE_URL"],
      gemini: ["GOOGLE_GEMINI_BASE_URL", "GOOGLE_VERTEX_BASE_URL", "CODE_ASSIST_ENDPOINT"],
      copilot: ["COPILOT_PROVIDER_BASE_URL"],
    };
    for (const agent of agents) {
      for (const name of own[agent] ?? []) {
        expect(
          modelDestinations(agent, { ...unrelated, [name]: "http://10.9.9.9:8080/v1" }, {}),
          `${agent} ${name}`,
        ).toContainEqual({ host: "10.9.9.9", port: 8080 });
      }
    }
  });

  it("do not open another agent's setting in the runner's env", () => {
    const others: Array<[string, string]> = [
      ["claude_code", "OPENAI_BASE_URL"],
      ["claude_code", "GOOGLE_GEMINI_BASE_URL"],
      ["codex", "ANTHROPIC_BASE_URL"],
      ["codex", "COPILOT_PROVIDER_BASE_URL"],
      ["openai", "ANTHROPIC_BASE_URL"],
      ["opencode", "GOOGLE_GEMINI_BASE_URL"],
      ["gemini", "OPENAI_BASE_URL"],
      ["copilot", "OPENAI_BASE_URL"],
      ["copilot", "ANTHROPIC_BASE_URL"],
    ];
    for (const [agent, name] of others) {
      expect(
        modelDestinations(agent, { [name]: "http://10.9.9.9:8080/v1" }, {}),
        `${agent} ${name}`,
      ).not.toContainEqual(expect.objectContaining({ host: "10.9.9.9" }));
    }
  });

  it("are named for every agent there is, and docs/agents.md says which open egress", () => {
    expect(Object.keys(runnerEndpointSettings).sort()).toEqual([...agents].sort());
    const docs = readFileSync(join(import.meta.dirname, "../../docs/agents.md"), "utf8");
    const egress = docs.slice(docs.indexOf("**Egress.**"), docs.indexOf("**Credentials**"));
    for (const name of new Set(Object.values(runnerEndpointSettings).flat())) {
      expect(egress, name).toContain(`\`${name}\``);
    }
  });
});
