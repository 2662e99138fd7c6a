import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adapterFor } from "../src/agents/registry.js";
import { agentCli } from "./helpers/agent-cli.js";
import { mainScript, withTools } from "./helpers/agent-turn.js";
import { type SandboxedUp, startSandboxedUp } from "./helpers/sandboxed-up.js";
import { adminToken, api, readEvents, waitForRun } from "./helpers/server.js";
import { type ModelServer, type RecordedRequest, startModelServer } from "./model-server/server.js";

/**
 * What a run's commands find in their environment on `runyard up`'s sandboxing runner, whose own
 * environment holds its operator's keys: the issue's "a member's step gets the operator's
 * credentials". Each value is looked for by the step's own shell (the output is masked, so a
 * value seen in it would prove nothing): a marker is printed in its place.
 */
const operatorSecrets: Record<string, string> = {
  OPENAI_API_KEY: "sk-operator-openai-5c1d9e",
  ANTHROPIC_API_KEY: "sk-ant-operator-8b2f4a",
  GITHUB_TOKEN: "ghp_operator0github0token0e7",
  GIT_TOKEN: "operator-git-token-3a9c",
  AWS_SECRET_ACCESS_KEY: "operator/aws/secret/71b0",
  GEMINI_API_KEY: "operator-gemini-key-2d6e",
  COPILOT_PROVIDER_API_KEY: "operator-copilot-provider-key-9f1a",
  GH_TOKEN: "gho_operator0copilot0login0c2",
};
/**
 * The operator's own Codex home, with their login in it (the runner's CODEX_HOME): outside /tmp,
 * as ~/.codex is, since an agent turn's sandbox has a /tmp of its own.
 */
const operatorCodexHome = mkdtempSync("/var/tmp/runyard-operator-codex-");
const codexLogin = "operator-codex-login-4b7e";
writeFileSync(join(operatorCodexHome, "auth.json"), JSON.stringify({ OPENAI_API_KEY: codexLogin }));
writeFileSync(join(operatorCodexHome, "config.toml"), "");

/** A variable of the runner's env its operator passes on to platform runs (step_pass_env). */
const passed = { name: "OPERATOR_PASSED", value: "passed-to-platform-runs-42" };

function cli(agent: string): string | undefined {
  const pkg = adapterFor(agent)?.package;
  return pkg ? agentCli(agent, pkg.name, pkg.version, pkg.bin) : undefined;
}
const claude = cli("claude_code");
const gemini = cli("gemini");
const codex = cli("codex");
const opencode = cli("opencode");
const copilot = cli("copilot");

/** Whether a model request offers the agent a tool of this name (Chat Completions or Responses). */
function offers(request: RecordedRequest, tool: string): boolean {
  return JSON.stringify((request.body as { tools?: unknown })?.tools ?? []).includes(`"name":"${tool}"`);
}

let up: SandboxedUp;
let model: ModelServer;
/** The Anthropic endpoint the runner's own ANTHROPIC_BASE_URL names, for Claude Code. */
let anthropic: ModelServer;
/** The Gemini API the runner's own GOOGLE_GEMINI_BASE_URL names, for Gemini CLI. */
let google: ModelServer;
let member: string;

beforeAll(async () => {
  // The model the runner's own OPENAI_BASE_URL names: a member's agent task that brings no key
  // of its own is given the runner's, as on an operator's machine.
  // Each agent's own requests (they offer its tools) get a conversation of their own; a side
  // call (a title) is answered with text.
  model = await startModelServer({
    conversations: [
      {
        match: (r) => r.path === "/v1/chat/completions" && offers(r, "run_command"),
        turns: [
          { toolCalls: [{ name: "run_command", input: { command: probe("; ") }, id: "call_env" }] },
          { text: "done" },
        ],
      },
      {
        match: (r) => r.path === "/v1/responses" && offers(r, "exec_command"),
        turns: [
          {
            toolCalls: [
              {
                name: "exec_command",
                input: {
                  cmd: `${probe("; ", "values")}; cat "$CODEX_HOME/auth.json" ${join(operatorCodexHome, "auth.json")} 2>/dev/null | grep -qF '${codexLogin}' && echo "LE""AK-codex-login" || echo "no""-codex-login"`,
                  login: false,
                  yield_time_ms: 30000,
                },
              },
            ],
          },
          { text: "done" },
        ],
      },
      {
        match: (r) => r.path === "/v1/responses" && offers(r, "bash"),
        turns: [
          { toolCalls: [{ name: "bash", input: { command: probe("; ", "values"), description: "look" } }] },
          { text: "done" },
        ],
      },
      {
        match: (r) => r.path === "/v1/chat/completions" && offers(r, "bash"),
        turns: [
          { toolCalls: [{ name: "bash", input: { command: probe("; ", "values"), description: "look" } }] },
          { text: "done" },
        ],
      },
      { turns: [{ text: "ok" }] },
    ],
  });
  anthropic = await startModelServer(
    mainScript({ text: "ok" }, [
      {
        toolCalls: [
          { name: "Bash", input: { command: `${probe("; ", "values")}; echo "base=$ANTHROPIC_BASE_URL"` } },
        ],
      },
      { text: "Done." },
    ]),
  );
  // A side call of Gemini CLI, without tools, is a next-speaker check.
  google = await startModelServer(
    mainScript({ text: '{"next_speaker":"user","reasoning":"done"}' }, [
      { toolCalls: [{ name: "run_shell_command", input: { command: probe("; ", "values") } }] },
      { text: "done" },
    ]),
  );
  const clis = [claude, gemini, codex, opencode, copilot].flatMap((path) => (path ? [dirname(path)] : []));
  up = await startSandboxedUp({
    PATH: [...clis, process.env.PATH].join(":"),
    GOOGLE_GEMINI_BASE_URL: google.url,
    CLAUDE_CODE_MAX_RETRIES: "0",
    ANTHROPIC_BASE_URL: anthropic.url,
    ...operatorSecrets,
    [passed.name]: passed.value,
    RUNYARD_STEP_PASS_ENV: passed.name,
    OPENAI_BASE_URL: `${model.url}/v1`,
    COPILOT_PROVIDER_BASE_URL: `${model.url}/v1`,
    CODEX_HOME: operatorCodexHome,
  });
  const created = await api<{ token: string }>(
    up.url,
    "POST",
    "/api/tokens",
    { kind: "user", name: "acme member", tenant_id: "acme" },
    adminToken,
  );
  expect(created.status).toBe(201);
  member = created.body.token;
}, 60_000);

afterAll(async () => {
  await up?.proc.kill();
  await model?.stop();
  await anthropic?.stop();
  await google?.stop();
  rmSync(operatorCodexHome, { recursive: true, force: true });
});

/**
 * Shell lines that print `LE` `AK-<name>` (spelled apart, as the command is in the events too) for
 * each operator secret found in the command's env, its /proc/self/environ or its sandbox's
 * /proc/1/environ (its value, or its name unless only `values` are looked for: Claude Code's
 * placeholder key has the name), `no-<name>` otherwise; and the passed variable as `passed=<value>`.
 */
function probe(separator: string, look: "names and values" | "values" = "names and values"): string {
  const lines = Object.entries(operatorSecrets).map(
    ([name, value]) =>
      `{ env; tr '\\0' '\\n' < /proc/self/environ; tr '\\0' '\\n' < /proc/1/environ; } 2>/dev/null | grep -qF -e '${value}'${look === "values" ? "" : ` -e '${name}='`} && echo "LE""AK-${name}" || echo "no""-${name}"`,
  );
  lines.push(`echo "passed=\${${passed.name}:-unset}"`);
  return lines.join(separator);
}

function workflow(script: string): string {
  return [
    "version: v0.1",
    "name: environment",
    "inventory:",
    "  hosts:",
    "    local: {}",
    "steps:",
    "  - name: look",
    "    targets: [local]",
    "    action: shell.run",
    "    args:",
    "      env:",
    '        RUN_OWN: "the-run-own-variable"',
    "      script: |",
    ...script.split("\n").map((line) => `        ${line}`),
    "",
  ].join("\n");
}

async function stepOutput(token: string, script: string): Promise<string> {
  const { status, body } = await api<{ run_id: string }>(
    up.url,
    "POST",
    "/api/runs",
    { kind: "workflow", workflow: workflow(script), vars: {} },
    token,
  );
  expect(status, JSON.stringify(body)).toBe(201);
  const run = await waitForRun(
    up.url,
    body.run_id,
    (view) => view.status === "success" || view.status === "failed",
  );
  const events = await readEvents(up.url, body.run_id);
  const output = events.flatMap((event) => (event.type === "step.output" ? [event.data] : [])).join("");
  expect(run.status, output).toBe("success");
  return output;
}

describe("a run's environment on a sandboxing runner", () => {
  it("a tenant member's step sees none of the runner's credentials, nor the variables its operator passes to platform runs", async () => {
    const output = await stepOutput(member, `${probe("\n")}\necho "own=$RUN_OWN"\necho "path=$PATH"`);
    expect(output).not.toContain("LEAK");
    for (const name of Object.keys(operatorSecrets)) expect(output).toContain(`no-${name}\n`);
    expect(output).toContain("passed=unset\n");
    // The run's own variables and a PATH to find programs with are there.
    expect(output).toContain("own=the-run-own-variable\n");
    expect(output).toMatch(/path=.*\/usr\/bin/);
  });

  it("a platform admin's step gets the variables named in step_pass_env, and still none of the runner's credentials", async () => {
    const output = await stepOutput(adminToken, probe("\n"));
    expect(output).not.toContain("LEAK");
    for (const name of Object.keys(operatorSecrets)) expect(output).toContain(`no-${name}\n`);
    expect(output).toContain(`passed=${passed.value}\n`);
  });

  it("a tenant member's agent turn given the runner's model key runs commands that see no operator credential", async () => {
    const { status, body } = await api<{ run_id: string }>(
      up.url,
      "POST",
      "/api/runs",
      { kind: "agent", agent: "openai", prompt: "look around" },
      member,
    );
    expect(status, JSON.stringify(body)).toBe(201);
    const run = await waitForRun(
      up.url,
      body.run_id,
      (view) => view.status === "success" || view.status === "failed",
      60_000,
    );
    const events = JSON.stringify(await readEvents(up.url, body.run_id));
    expect(run.status, events).toBe("success");
    // The turn did call the model with the runner's key: the member brought none.
    expect(
      model.requests.some(
        (request) => request.headers.authorization === `Bearer ${operatorSecrets.OPENAI_API_KEY}`,
      ),
    ).toBe(true);
    expect(events).not.toContain("LEAK-");
    for (const name of Object.keys(operatorSecrets)) expect(events).toContain(`no-${name}`);
    expect(events).toContain("passed=unset");
  });

  it.skipIf(!claude)(
    "a tenant member's Claude Code turn calls its model through the runner's proxy, which adds the key its CLI and shell never hold",
    async () => {
      const { status, body } = await api<{ run_id: string }>(
        up.url,
        "POST",
        "/api/runs",
        { kind: "agent", agent: "claude_code", prompt: "look around" },
        member,
      );
      expect(status, JSON.stringify(body)).toBe(201);
      const run = await waitForRun(
        up.url,
        body.run_id,
        (view) => view.status === "success" || view.status === "failed",
        90_000,
      );
      const events = JSON.stringify(await readEvents(up.url, body.run_id));
      expect(run.status, events).toBe("success");
      const calls = anthropic.requests.filter(withTools);
      expect(calls.length).toBeGreaterThan(0);
      for (const call of calls) expect(call.headers["x-api-key"]).toBe(operatorSecrets.ANTHROPIC_API_KEY);
      expect(events).not.toContain("LEAK-");
      for (const name of Object.keys(operatorSecrets)) expect(events).toContain(`no-${name}`);
      expect(events).toMatch(/base=http:\/\/127\.0\.0\.1:\d+/);
    },
  );

  it.skipIf(!claude)(
    "a tenant member's Claude Code turn whose CLI arguments point it at another server sends that server the placeholder, never the runner's key",
    async () => {
      const elsewhere = await startModelServer(mainScript({ text: "ok" }, [{ text: "Done." }]));
      try {
        const { status, body } = await api<{ run_id: string }>(
          up.url,
          "POST",
          "/api/runs",
          {
            kind: "agent",
            agent: "claude_code",
            prompt: "say done",
            extra_args: ["--settings", JSON.stringify({ env: { ANTHROPIC_BASE_URL: elsewhere.url } })],
          },
          member,
        );
        expect(status, JSON.stringify(body)).toBe(201);
        await waitForRun(
          up.url,
          body.run_id,
          (view) => view.status === "success" || view.status === "failed",
          90_000,
        );
        expect(elsewhere.requests.length).toBeGreaterThan(0);
        const seen = JSON.stringify(elsewhere.requests.map((request) => request.headers));
        expect(seen).not.toContain(operatorSecrets.ANTHROPIC_API_KEY);
        expect(seen).toContain("runyard-turn-");
      } finally {
        await elsewhere.stop();
      }
    },
  );

  it.skipIf(!gemini)(
    "a tenant member's Gemini CLI turn calls its model through the runner's proxy, which adds the key its CLI and shell never hold",
    async () => {
      const { status, body } = await api<{ run_id: string }>(
        up.url,
        "POST",
        "/api/runs",
        { kind: "agent", agent: "gemini", prompt: "look around", model: "gemini-2.5-pro" },
        member,
      );
      expect(status, JSON.stringify(body)).toBe(201);
      const run = await waitForRun(
        up.url,
        body.run_id,
        (view) => view.status === "success" || view.status === "failed",
        90_000,
      );
      const events = JSON.stringify(await readEvents(up.url, body.run_id));
      expect(run.status, events).toBe("success");
      const calls = google.requests.filter(withTools);
      expect(calls.length).toBeGreaterThan(0);
      for (const call of calls) expect(call.headers["x-goog-api-key"]).toBe(operatorSecrets.GEMINI_API_KEY);
      expect(events).not.toContain("LEAK-");
      for (const name of Object.keys(operatorSecrets)) expect(events).toContain(`no-${name}`);
    },
  );

  for (const [agent, path, modelName] of [
    ["codex", codex, "gpt-5.5"],
    ["opencode", opencode, "openai/gpt-5.5"],
  ] as const) {
    it.skipIf(!path)(
      `a tenant member's ${agent} turn calls the runner's OPENAI_BASE_URL through its proxy, which adds the key its CLI and shell never hold`,
      async () => {
        const { status, body } = await api<{ run_id: string }>(
          up.url,
          "POST",
          "/api/runs",
          { kind: "agent", agent, prompt: "look around", ...(modelName ? { model: modelName } : {}) },
          member,
        );
        expect(status, JSON.stringify(body)).toBe(201);
        const run = await waitForRun(
          up.url,
          body.run_id,
          (view) => view.status === "success" || view.status === "failed",
          90_000,
        );
        const events = JSON.stringify(await readEvents(up.url, body.run_id));
        expect(run.status, events).toBe("success");
        const calls = model.requests.filter((r) => r.path === "/v1/responses");
        expect(calls.length).toBeGreaterThan(0);
        for (const call of calls)
          expect(call.headers.authorization).toBe(`Bearer ${operatorSecrets.OPENAI_API_KEY}`);
        expect(events).not.toContain("LEAK-");
        for (const name of Object.keys(operatorSecrets)) expect(events).toContain(`no-${name}`);
        // Nor the operator's Codex login: a member's Codex gets a home of its own.

        if (agent === "codex") expect(events).toContain("no-codex-login");
      },
    );
  }

  it.skipIf(!copilot)(
    "a tenant member's Copilot CLI turn calls the runner's COPILOT_PROVIDER_BASE_URL through its proxy, which adds the key its CLI and shell never hold",
    async () => {
      const { status, body } = await api<{ run_id: string }>(
        up.url,
        "POST",
        "/api/runs",
        { kind: "agent", agent: "copilot", prompt: "look around", model: "gpt-4.1" },
        member,
      );
      expect(status, JSON.stringify(body)).toBe(201);
      const run = await waitForRun(
        up.url,
        body.run_id,
        (view) => view.status === "success" || view.status === "failed",
        90_000,
      );
      const events = JSON.stringify(await readEvents(up.url, body.run_id));
      expect(run.status, events).toBe("success");
      const calls = model.requests.filter((r) => r.path === "/v1/chat/completions" && offers(r, "bash"));
      expect(calls.length).toBeGreaterThan(0);
      for (const call of calls)
        expect(call.headers.authorization).toBe(`Bearer ${operatorSecrets.COPILOT_PROVIDER_API_KEY}`);
      expect(events).not.toContain("LEAK-");
      for (const name of Object.keys(operatorSecrets)) expect(events).toContain(`no-${name}`);
    },
  );
});

/**
 * A runner whose operator set Codex up without `OPENAI_BASE_URL` (OpenAI's endpoint, or the
 * `openai_base_url` of their config.toml, here the scripted server) and logged Copilot CLI in to
 * GitHub (`GH_TOKEN`): neither key reaches a member's turn.
 */
describe("a run's environment on a sandboxing runner without the operator's OPENAI_BASE_URL", () => {
  let plain: SandboxedUp;
  let plainMember: string;
  const codexHome = mkdtempSync("/var/tmp/runyard-operator-codex-");

  beforeAll(async () => {
    writeFileSync(join(codexHome, "config.toml"), `openai_base_url = "${model.url}/v1"\n`);
    const { OPENAI_API_KEY, GH_TOKEN } = operatorSecrets;
    const clis = [codex, copilot].flatMap((path) => (path ? [dirname(path)] : []));
    plain = await startSandboxedUp({
      PATH: [...clis, process.env.PATH].join(":"),
      OPENAI_API_KEY: OPENAI_API_KEY!,
      GH_TOKEN: GH_TOKEN!,
      CODEX_HOME: codexHome,
    });
    const created = await api<{ token: string }>(
      plain.url,
      "POST",
      "/api/tokens",
      { kind: "user", name: "acme member", tenant_id: "acme" },
      adminToken,
    );
    expect(created.status).toBe(201);
    plainMember = created.body.token;
  }, 60_000);

  afterAll(async () => {
    await plain?.proc.kill();
    rmSync(codexHome, { recursive: true, force: true });
  });

  async function memberTurn(body: Record<string, unknown>) {
    const submitted = await api<{ run_id: string }>(plain.url, "POST", "/api/runs", body, plainMember);
    expect(submitted.status, JSON.stringify(submitted.body)).toBe(201);
    const run = await waitForRun(
      plain.url,
      submitted.body.run_id,
      (view) => view.status === "success" || view.status === "failed",
      90_000,
    );
    return { run, events: JSON.stringify(await readEvents(plain.url, submitted.body.run_id)) };
  }

  it.skipIf(!codex)(
    "a tenant member's codex turn calls its user's OpenAI endpoint through the runner's proxy, which adds the key its CLI and shell never hold",
    async () => {
      const before = model.requests.length;
      const { run, events } = await memberTurn({
        kind: "agent",
        agent: "codex",
        prompt: "look around",
        model: "gpt-5.5",
      });
      expect(run.status, events).toBe("success");
      const calls = model.requests.slice(before).filter((r) => r.path === "/v1/responses");
      expect(calls.length).toBeGreaterThan(0);
      for (const call of calls)
        expect(call.headers.authorization).toBe(`Bearer ${operatorSecrets.OPENAI_API_KEY}`);
      expect(events).not.toContain("LEAK-");
      for (const name of Object.keys(operatorSecrets)) expect(events).toContain(`no-${name}`);
    },
  );

  it.skipIf(!copilot)(
    "a tenant member's Copilot CLI turn on the runner's GitHub login is refused, naming what would let it run",
    async () => {
      const { run } = await memberTurn({
        kind: "agent",
        agent: "copilot",
        prompt: "look around",
        model: "gpt-4.1",
      });
      expect(run.status).toBe("failed");
      expect(run.error?.code).toBe("AGENT_AUTH");
      expect(run.error?.message).toContain("GH_TOKEN");
      expect(run.error?.hint).toContain("COPILOT_PROVIDER_BASE_URL");
      expect(run.error?.hint).toContain("COPILOT_GITHUB_TOKEN");
    },
  );
});
