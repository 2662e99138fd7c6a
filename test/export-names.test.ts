// biome-ignore-all lint/suspicious/noTemplateCurlyInString: ${DEPLOY_KEY} in these strings is shell, not a template.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { runCli, tempDir } from "./helpers/cli.js";
import {
  adminToken,
  api,
  isFinal,
  type Proc,
  readEvents,
  runnerToken,
  startRunner,
  startTestServer,
  submit,
  type TestServer,
  waitForRun,
} from "./helpers/server.js";

/** A stored secret of letters, digits and _ (as a GitHub token is): it fits inside a variable name. */
const deployKey = "ghp_Zq7XvK2mN9pR4tW8yB3cF6hJ1lD5sG0a";

/** Raw bytes of the database file and its WAL, as someone with the disk would read them. */
function databaseBytes(home: string): string {
  return readdirSync(home)
    .filter((name) => name.startsWith("runyard.db"))
    .map((name) => readFileSync(join(home, name)).toString("latin1"))
    .join("");
}

let server: TestServer;
let runner: Proc;

beforeAll(async () => {
  server = await startTestServer(tempDir());
  runner = await startRunner(server.url, await runnerToken(server.url), { id: "exports-runner" });
  const stored = await runCli(
    ["secret", "set", "DEPLOY_KEY", "--server", server.url, "--token", adminToken],
    {
      input: deployKey,
    },
  );
  expect(stored.code, stored.stderr).toBe(0);
}, 60_000);

afterAll(async () => {
  await runner?.kill();
  await server?.proc.kill();
});

describe("an export whose name holds a secret", () => {
  test("is refused with a masked notice, and the secret is in no API answer, event, list, run-status or database byte", async () => {
    const workflow = `name: leak
secrets: [DEPLOY_KEY]
steps:
  - name: export
    action: shell.run
    args:
      export_vars: true
      script: |
        echo "L_\${DEPLOY_KEY}=1" >> "$RUNYARD_OUTPUT"
        echo "BOPS_EXPORT:M_\${DEPLOY_KEY}=1"
        echo "PLAIN=kept" >> "$RUNYARD_OUTPUT"
`;
    const runId = await submit(server.url, workflow);
    const run = await waitForRun(server.url, runId, isFinal);
    expect(run.status, JSON.stringify(run.error)).toBe("success");
    expect(run.vars).toEqual({ DEPLOY_KEY: "***", PLAIN: "kept" });

    const sse = await readEvents(server.url, runId);
    const notices = sse.filter((event) => event.type === "notice").map((event) => JSON.stringify(event));
    expect(notices.join("\n")).toContain("export L_*** was refused: its name holds a secret's value");
    expect(notices.join("\n")).toContain("export M_*** was refused");
    expect(sse.filter((event) => event.type === "vars.exported")).toEqual([
      expect.objectContaining({ vars: { PLAIN: "kept" } }),
    ]);

    const answers = [
      await api(server.url, "GET", `/api/runs/${runId}`),
      await api(server.url, "GET", `/api/runs/${runId}/events/page?limit=1000`),
      await api(server.url, "GET", "/api/runs"),
      await api(server.url, "GET", `/run-status?run_id=${runId}`),
    ];
    for (const { status, body } of answers) {
      expect(status).toBe(200);
      expect(JSON.stringify(body)).not.toContain(deployKey);
    }
    expect(JSON.stringify(sse)).not.toContain(deployKey);
    expect(databaseBytes(server.home)).not.toContain(deployKey);
  });
});

describe("an export under a name programs read as a setting", () => {
  test("is refused with a notice, whether a printed line or $RUNYARD_OUTPUT carried it, and the next step runs without it", async () => {
    const workflow = `name: settings
secrets: [DEPLOY_KEY]
steps:
  - name: fetch
    action: shell.run
    args:
      export_vars: true
      script: |
        # A report the step prints, written by someone else: one of its lines looks like an export.
        printf 'report line 1\\nBOPS_EXPORT:BASH_ENV=$(printenv DEPLOY_KEY | rev >&2)\\n'
        echo "LD_PRELOAD=/tmp/attacker.so" >> "$RUNYARD_OUTPUT"
        echo "PATH=/tmp/attacker-bin:/usr/bin:/bin" >> "$RUNYARD_OUTPUT"
        echo "REPORT_ID=42" >> "$RUNYARD_OUTPUT"
  - name: deploy
    action: shell.run
    args:
      script: |
        echo "report=\${REPORT_ID} bash_env=\${BASH_ENV:-unset} preload=\${LD_PRELOAD:-unset}"
        echo "path=$PATH"
`;
    const runId = await submit(server.url, workflow);
    const run = await waitForRun(server.url, runId, isFinal);
    expect(run.status, JSON.stringify(run.error)).toBe("success");
    expect(run.vars).toEqual({ DEPLOY_KEY: "***", REPORT_ID: "42" });

    const sse = await readEvents(server.url, runId);
    const notices = sse
      .filter((event) => event.type === "notice" && event.step === "fetch")
      .map((event) => (event.type === "notice" ? event.message : ""));
    for (const name of ["BASH_ENV", "LD_PRELOAD", "PATH"]) {
      expect(notices).toContainEqual(
        expect.stringMatching(
          new RegExp(`^export ${name} was refused: ${name} is a name programs read as a setting`),
        ),
      );
    }
    const said = sse
      .filter((event) => event.type === "step.output" && event.step === "deploy")
      .map((event) => (event.type === "step.output" ? event.data : ""))
      .join("");
    expect(said).toContain("report=42 bash_env=unset preload=unset");
    expect(said).not.toContain("attacker");
    expect(JSON.stringify(sse)).not.toContain([...deployKey].reverse().join(""));
  });

  test("is refused in any case when its program reads it in any case (Https_Proxy, Npm_Config_Registry)", async () => {
    // Python's urllib takes any *_proxy whatever its case, and npm any npm_config_*: a printed
    // line under such a spelling would send the next step's requests through the attacker.
    const workflow = `name: settings-case
steps:
  - name: fetch
    action: shell.run
    args:
      export_vars: true
      script: |
        printf 'BOPS_EXPORT:Https_Proxy=http://127.0.0.1:9/attacker\\nBOPS_EXPORT:Npm_Config_Registry=http://127.0.0.1:9/attacker/\\n'
        echo "REPORT_ID=43" >> "$RUNYARD_OUTPUT"
  - name: deploy
    action: shell.run
    args:
      script: |
        echo "report=\${REPORT_ID} proxy=\${Https_Proxy:-unset} registry=\${Npm_Config_Registry:-unset}"
`;
    const runId = await submit(server.url, workflow);
    const run = await waitForRun(server.url, runId, isFinal);
    expect(run.status, JSON.stringify(run.error)).toBe("success");
    expect(run.vars).toEqual({ REPORT_ID: "43" });
    const sse = await readEvents(server.url, runId);
    const notices = sse
      .filter((event) => event.type === "notice" && event.step === "fetch")
      .map((event) => (event.type === "notice" ? event.message : ""));
    for (const name of ["Https_Proxy", "Npm_Config_Registry"]) {
      expect(notices).toContainEqual(
        expect.stringMatching(
          new RegExp(`^export ${name} was refused: ${name} is a name programs read as a setting`),
        ),
      );
    }
    const said = sse
      .filter((event) => event.type === "step.output" && event.step === "deploy")
      .map((event) => (event.type === "step.output" ? event.data : ""))
      .join("");
    expect(said).toContain("report=43 proxy=unset registry=unset");
  });
});

describe("a step's exports together", () => {
  // A runner's result travels in one message of at most 4 MiB: five values of 1 MB each went out
  // as a 5 MB message the server would close the socket on, again on each reconnect.
  test("fail the step with EXPORT_TOO_LARGE past the 4 MiB a runner's message holds, and the run ends", async () => {
    const workflow = `name: many-exports
steps:
  - name: export
    action: shell.run
    args:
      script: |
        for name in A B C D E; do
          printf '%s=' "$name" >> "$RUNYARD_OUTPUT"
          head -c 1000000 /dev/zero | tr '\\0' 'v' >> "$RUNYARD_OUTPUT"
          echo >> "$RUNYARD_OUTPUT"
        done
`;
    const runId = await submit(server.url, workflow);
    const run = await waitForRun(server.url, runId, isFinal, 30_000);
    expect(run.status).toBe("failed");
    expect(run.error?.message).toMatch(
      /the step's exports and warnings are 4\.8 MiB as JSON; a step's result may hold at most 4\.0 MiB/,
    );
  });
});
