// biome-ignore-all lint/suspicious/noTemplateCurlyInString: ${...} in these strings is shell, not a template.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunEvent } from "../../src/core/events.js";
import { tempDir } from "../helpers/cli.js";
import {
  api,
  isFinal,
  type Proc,
  type RunView,
  readEvents,
  startRunner,
  startTestServer,
  type TestServer,
  waitForRun,
} from "../helpers/server.js";
import { hasTools } from "../helpers/shared-agent-runner.js";
import { type ModelServer, type RecordedRequest, startModelServer } from "../model-server/server.js";

/*
 * What an `agent.run` step's answer may set, through a real server and a sandboxed runner of the
 * tenant with the built-in `openai` agent against the scripted model server. The answer is
 * written by a model anyone can steer (an issue body, a report, a file of the repo): only the
 * fields its output_schema declares reach later steps, and never under a name a program reads
 * as a setting, so an answer cannot make the next step's bash run code with its secrets.
 */

let server: TestServer;
let runner: Proc;
let model: ModelServer;
let member: string;

const deployToken = "dtok-Wq9Zr2Lx7Vn4Kp8Ys3";
const reversed = [...deployToken].reverse().join("");

/** A turn whose prompt holds `marker` answers `text`: each test scripts its own answer. */
const answers: Array<{ marker: string; text: string }> = [];
const asks = (marker: string) => (r: RecordedRequest) => hasTools(r) && r.rawBody.includes(marker);

beforeAll(async () => {
  model = await startModelServer({ conversations: [] });
  server = await startTestServer(tempDir());
  member = (
    await api<{ token: string }>(server.url, "POST", "/api/tokens", {
      kind: "user",
      name: "acme member",
      tenant_id: "acme",
    })
  ).body.token;
  const stored = await api(server.url, "PUT", "/api/secrets/DEPLOY_TOKEN", { value: deployToken }, member);
  expect(stored.status, JSON.stringify(stored.body)).toBeLessThan(300);
  const acmeRunner = await api<{ token: string }>(server.url, "POST", "/api/tokens", {
    kind: "runner",
    name: "acme agents",
    tenant_id: "acme",
  });
  runner = await startRunner(server.url, acmeRunner.body.token, {
    id: "acme-answers",
    env: { OPENAI_BASE_URL: `${model.url}/v1`, OPENAI_API_KEY: "sk-test-answers-7c1e" },
  });
}, 120_000);

afterAll(async () => {
  await runner?.kill("SIGKILL");
  await server?.proc.kill("SIGKILL");
  await model?.stop();
});

/** Runs `workflow` as the tenant's member, the model answering `text` to the prompt holding `marker`. */
async function runWith(
  marker: string,
  text: string,
  workflow: string,
): Promise<{ view: RunView; events: RunEvent[] }> {
  answers.push({ marker, text });
  model.setScript({
    conversations: answers.map((answer) => ({ match: asks(answer.marker), turns: [{ text: answer.text }] })),
  });
  const started = await api<{ run_id: string }>(
    server.url,
    "POST",
    "/api/runs",
    { kind: "workflow", workflow },
    member,
  );
  expect(started.status, JSON.stringify(started.body)).toBe(201);
  const view = await waitForRun(server.url, started.body.run_id, isFinal, 150_000);
  return { view, events: await readEvents(server.url, started.body.run_id) };
}

const output = (events: RunEvent[], step: string) =>
  events
    .filter(
      (e): e is Extract<RunEvent, { type: "step.output" }> => e.type === "step.output" && e.step === step,
    )
    .map((e) => e.data)
    .join("");

const triageThenDeploy = (marker: string) => `name: triage-${marker}
secrets: [DEPLOY_TOKEN]
steps:
  - name: triage
    action: agent.run
    args:
      agent: openai
      model: gpt-4.1
      prompt: Triage the report ${marker}.
      output_schema:
        type: object
        required: [severity, count]
        properties:
          severity: {type: string, enum: [low, high]}
          count: {type: integer}
  - name: deploy
    action: shell.run
    args:
      script: |
        echo "severity=\${severity} count=\${count}"
        echo "path=$PATH"
        echo "preload=\${LD_PRELOAD:-unset}"
        echo "bash_env=\${BASH_ENV:-unset}"
        echo "token=\${#DEPLOY_TOKEN} chars"
`;

describe("an agent.run step's answer", () => {
  it("sets no BASH_ENV, PATH or LD_PRELOAD of the next step: fields output_schema does not declare are dropped, with a notice", async () => {
    const answer = JSON.stringify({
      severity: "low",
      count: 1,
      BASH_ENV: "$(printenv DEPLOY_TOKEN | rev >&2; echo ran-bash-env >&2)",
      PATH: "/tmp/attacker-bin:/usr/local/bin:/usr/bin:/bin",
      LD_PRELOAD: "/tmp/attacker.so",
    });
    const { view, events } = await runWith("case-injected", answer, triageThenDeploy("case-injected"));
    expect(view.status, JSON.stringify(view.error)).toBe("success");
    expect(events.find((e) => e.type === "vars.exported" && e.step === "triage")).toMatchObject({
      vars: { severity: "low", count: "1" },
    });
    const exported = events.filter((e) => e.type === "vars.exported").flatMap((e) => Object.keys(e.vars));
    expect(exported).not.toContain("BASH_ENV");
    expect(view.vars).not.toHaveProperty("PATH");
    expect(view.vars).not.toHaveProperty("LD_PRELOAD");

    const said = output(events, "deploy");
    expect(said).toContain("severity=low count=1");
    expect(said).toContain(`token=${deployToken.length} chars`);
    expect(said).toContain("bash_env=unset");
    expect(said).toContain("preload=unset");
    expect(said).not.toContain("attacker");
    expect(said).not.toContain("ran-bash-env");
    expect(JSON.stringify(events)).not.toContain(reversed);

    const notice = events.find((e) => e.type === "notice" && e.step === "triage");
    expect(notice).toMatchObject({ level: "warn" });
    const message = notice?.type === "notice" ? notice.message : "";
    expect(message).toContain("BASH_ENV, PATH, LD_PRELOAD");
    expect(message).toContain("output_schema does not declare");
    expect(message).toContain("programs read as a setting");
  }, 200_000);

  it("may not be declared under a setting's name: the workflow is refused at submit, at the property's line", async () => {
    const asked = model.requests.length;
    const refused = await api<{ error: { code: string; message: string; hint: string } }>(
      server.url,
      "POST",
      "/api/runs",
      {
        kind: "workflow",
        workflow: `name: triage-declared
steps:
  - name: triage
    action: agent.run
    args:
      agent: openai
      prompt: Triage it.
      output_schema:
        type: object
        properties:
          LD_PRELOAD: {type: string}
`,
      },
      member,
    );
    expect(refused.status).toBe(400);
    expect(refused.body.error.code).toBe("WORKFLOW_INVALID");
    expect(refused.body.error.message).toMatch(
      /:11:11: output_schema of step "triage": property LD_PRELOAD would let the agent's answer set LD_PRELOAD: LD_PRELOAD is a name programs read as a setting/,
    );
    expect(model.requests.length).toBe(asked);
  });
});
