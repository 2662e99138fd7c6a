// biome-ignore-all lint/suspicious/noTemplateCurlyInString: ${VAR} in these strings is workflow syntax, not a template.
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cliPath, runCli, tempDir } from "./helpers/cli.js";
import {
  adminToken,
  isFinal,
  type Proc,
  runnerToken,
  startRunner,
  startTestServer,
  stepDir,
  submit,
  type TestServer,
  waitForRun,
} from "./helpers/server.js";

/*
 * What a member chose (a concurrency group named from a variable) and what a step printed reach
 * an operator's terminal through the CLI: colours stay, and nothing else a terminal would act on
 * (a window title, the clipboard, a hyperlink, cursor movement, a device control) gets through
 * unless `--raw` asks for it. The CLI runs on a real pseudo-terminal (`script`).
 */

const esc = "\u001b";
const title = `${esc}]0;pwned${"\u0007"}`;
const clipboard = `${esc}]52;c;cm0gLXJmIH4K${"\u0007"}`;
const link = `${esc}]8;;https://evil.test${esc}\\click${esc}]8;;${esc}\\`;
const cursorUp = `${esc}[2A${esc}[2K`;
const deviceControl = `${esc}P$q"p${esc}\\`;
const red = `${esc}[31m`;

let server: TestServer;
let runner: Proc;
const gates = stepDir();

beforeAll(async () => {
  server = await startTestServer(tempDir());
  runner = await startRunner(server.url, await runnerToken(server.url), { id: "tty-runner", capacity: 2 });
}, 60_000);

afterAll(async () => {
  await runner?.kill("SIGKILL");
  await server?.proc.kill("SIGKILL");
});

/** The CLI on a pseudo-terminal, as an operator types it; what the terminal received. */
function onTerminal(args: string[]): { code: number | null; output: string } {
  const command = [process.execPath, cliPath, ...args]
    .map((word) => `'${word.replace(/'/g, "'\\''")}'`)
    .join(" ");
  const result = spawnSync("script", ["-qefc", command, "/dev/null"], {
    env: {
      ...process.env,
      RUNYARD_SERVER_URL: server.url,
      RUNYARD_TOKEN: adminToken,
      RUNYARD_HOME: tempDir(),
      TERM: "xterm-256color",
      NO_COLOR: "1",
    },
    encoding: "utf8",
    timeout: 30_000,
  });
  return { code: result.status, output: result.stdout };
}

const acted = [title, clipboard, `${esc}]8;`, `${esc}[2A`, `${esc}[2K`, `${esc}P`, "pwned"];

describe("on a terminal", () => {
  it("runs logs keeps a step's colours and drops its title, clipboard, hyperlink, cursor moves and device controls; --raw keeps them", async () => {
    const printed = `${red}red${esc}[0m ${title}${clipboard}${link} ${cursorUp}${deviceControl}end`;
    const script = `printf '%s\\n' '${printed.replace(/'/g, "'\\''")}'`;
    const run = await submit(
      server.url,
      `name: noisy\nsteps:\n  - name: print\n    action: shell.run\n    args:\n      script: ${JSON.stringify(script)}\n`,
    );
    expect((await waitForRun(server.url, run, isFinal)).status).toBe("success");
    const shown = onTerminal(["runs", "logs", run]);
    expect(shown.code, shown.output).toBe(0);
    expect(shown.output).toContain(`${red}red${esc}[0m`);
    expect(shown.output).toContain("click");
    expect(shown.output).toContain("end");
    for (const sequence of acted) expect(shown.output, JSON.stringify(sequence)).not.toContain(sequence);
    const raw = onTerminal(["runs", "logs", run, "--raw"]);
    expect(raw.output).toContain(title);
    expect(raw.output).toContain(clipboard);
  }, 60_000);

  it("runs show prints a concurrency group named from a variable as plain text", async () => {
    const gate = mkdtempSync(join(gates, "gate-"));
    const workflow = `name: grouped
concurrency: "deploy-\${ENV}"
steps:
  - name: hold
    action: shell.run
    args:
      cwd: ${gates}
      script: |
        while [ ! -f "${gate}/release" ]; do sleep 0.05; done
`;
    const env = `prod${title}${red}`;
    const holder = await submit(server.url, workflow, { ENV: env });
    await waitForRun(server.url, holder, (run) => run.status === "running");
    const waiting = await submit(server.url, workflow, { ENV: env });
    await waitForRun(
      server.url,
      waiting,
      (run) =>
        (run as { waiting_for?: Array<{ reason: string | null }> }).waiting_for?.some((need) =>
          need.reason?.includes("concurrency group"),
        ) ?? false,
    );
    try {
      const shown = onTerminal(["runs", "show", waiting]);
      expect(shown.code, shown.output).toBe(0);
      expect(shown.output).toContain("waiting for concurrency group deploy-prod");
      expect(shown.output).not.toContain(esc);
      // The variable is shown too, as plain text.
      expect(shown.output).toContain("ENV=prod");
    } finally {
      writeFileSync(join(gate, "release"), "");
    }
    await waitForRun(server.url, waiting, isFinal);
  }, 60_000);
});

describe("anywhere", () => {
  it("prints a server's error quoting a name as plain text, on a pipe too", async () => {
    const name = `x${red}y${title}`;
    const result = await runCli(["hook", "rm", name, "--server", server.url, "--token", adminToken], {
      cwd: tempDir(),
    });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("error: no hook named xy");
    expect(result.stderr).not.toContain(esc);
  });
});
