import { afterEach, describe, expect, it } from "vitest";
import { runCli } from "./helpers/cli.js";
import { adminToken, type Proc, startTestServer, submit } from "./helpers/server.js";

/*
 * Names users choose reach other people's terminals through the CLI's tables: escape sequences
 * and control characters in them are stripped there, and `--json` keeps them exactly.
 */

const hostile = "\u001b]0;pwned\u0007\u001b[2Jx";

const started: Proc[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((proc) => proc.kill("SIGKILL")));
});

describe("CLI tables of names users chose", () => {
  it("`runyard runs list` and `runs show` print no ESC or BEL byte of a run's or step's name; --json keeps it", async () => {
    const server = await startTestServer();
    started.push(server.proc);
    // YAML's double-quoted escapes put ESC and BEL into the names; no runner, so it stays queued.
    const runId = await submit(
      server.url,
      `version: v0.1
name: "\\e]0;pwned\\a\\e[2Jx"
inventory:
  hosts:
    a: {group: nowhere}
steps:
  - name: "step\\e[31m\\x9b2J\\tone"
    targets: [a]
    action: cmd.run
    args:
      cmd: "true"
`,
    );
    const env = { RUNYARD_SERVER_URL: server.url, RUNYARD_TOKEN: adminToken };

    const listed = await runCli(["runs", "list"], { env });
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toMatch(new RegExp(`^${runId}\\s+queued\\s+x\\s`, "m"));
    expect(listed.stdout).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);

    const shown = await runCli(["runs", "show", runId], { env });
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toContain(`run ${runId}: x (workflow) queued`);
    expect(shown.stdout).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);

    const json = await runCli(["runs", "list", "--json"], { env });
    expect(json.code, json.stderr).toBe(0);
    const page = JSON.parse(json.stdout) as { runs: Array<{ run_id: string; name: string }> };
    expect(page.runs.find((run) => run.run_id === runId)?.name).toBe(hostile);
  });
});
