import { randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage } from "node:http";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { finished, parseEvents, runCli, tempDir, writeWorkflow } from "./helpers/cli.js";
import { cpuPacedMs } from "./helpers/machine-pace.js";
import {
  adminToken,
  api,
  freePort,
  isFinal,
  type Proc,
  readEvents,
  runnerToken,
  startCli,
  startRunner,
  startTestServer,
  stepDir,
  submit,
  waitForRun,
} from "./helpers/server.js";

/** A value no test output could hold by chance. */
function secretValue(label: string): string {
  return `${label}-${randomBytes(9).toString("hex")}`;
}

/** Raw bytes of the database file and its WAL, as an attacker with the disk would read them. */
function databaseBytes(home: string): string {
  return readdirSync(home)
    .filter((name) => name.startsWith("runyard.db"))
    .map((name) => readFileSync(join(home, name)).toString("latin1"))
    .join("");
}

function mode(path: string): string {
  return (statSync(path).mode & 0o777).toString(8);
}

/**
 * One step mints two secrets (a BOPS_EXPORT line, a $RUNYARD_OUTPUT line) and prints them on
 * stdout and stderr; the next checks it got the real values and prints them again.
 */
function mintingWorkflow(minted: { line: string; file: string }, extra = ""): string {
  return `name: minting
secrets: [DB_URL]
${extra}steps:
  - name: mint
    action: shell.run
    args:
      export_vars: true
      script: |
        echo "BOPS_EXPORT:NEW_TOKEN=${minted.line}"
        echo "minted ${minted.line}"
        echo "on stderr ${minted.line}" >&2
        echo "FILE_TOKEN=${minted.file}" >> "$RUNYARD_OUTPUT"
        echo "from the file ${minted.file}"
        echo "db is $DB_URL and api is $API_TOKEN"
  - name: use
    action: shell.run
    args:
      script: |
        test "$NEW_TOKEN" = "${minted.line}" && test "$FILE_TOKEN" = "${minted.file}" && echo "later steps get real values"
        echo "later $NEW_TOKEN $FILE_TOKEN $DB_URL"
`;
}

describe("secrets, run here (runyard run)", () => {
  it("masks a secret exported by a step in its own output, vars.exported, run.finished and output_path files", async () => {
    const minted = { line: secretValue("line"), file: secretValue("file") };
    const given = { db: secretValue("db"), api: secretValue("api") };
    const dir = tempDir();
    const outputDir = join(dir, "full-output");
    const flow = writeWorkflow(
      mintingWorkflow(minted).replace(
        "      export_vars: true\n",
        `      export_vars: true\n      output_path: ${outputDir}\n`,
      ),
      dir,
    );
    const result = await runCli(["run", flow, "--json", "--var", `DB_URL=${given.db}`], {
      env: { API_TOKEN: given.api },
    });
    expect(result.code, result.stderr).toBe(0);
    const events = parseEvents(result.stdout);
    const everything = result.stdout + result.stderr;
    for (const value of [...Object.values(minted), ...Object.values(given)]) {
      expect(everything).not.toContain(value);
    }
    const output = events
      .filter((e) => e.type === "step.output")
      .map((e) => (e.type === "step.output" ? e.data : ""))
      .join("");
    expect(output).toContain("BOPS_EXPORT:NEW_TOKEN=***");
    expect(output).toContain("minted ***");
    expect(output).toContain("on stderr ***");
    expect(output).toContain("from the file ***");
    expect(output).toContain("later steps get real values");
    expect(events.find((e) => e.type === "vars.exported")).toMatchObject({
      vars: { NEW_TOKEN: "***", FILE_TOKEN: "***" },
    });
    expect(finished(events).vars).toMatchObject({ NEW_TOKEN: "***", FILE_TOKEN: "***", DB_URL: "***" });
    const files = readdirSync(outputDir);
    expect(files.length).toBeGreaterThan(0);
    for (const file of files) {
      const text = readFileSync(join(outputDir, file), "utf8");
      for (const value of Object.values(minted)) expect(text).not.toContain(value);
    }
  });

  it("masks a 100 KB secret in a step's output without slowing the run down", async () => {
    const secret = randomBytes(75_000).toString("base64");
    const flow = writeWorkflow(`name: long
steps:
  - name: near-miss
    action: shell.run
    args:
      script: |
        near="\${BIG_TOKEN%?}"
        for i in $(seq 1 40); do printf '%s\\n' "$near"; done
        printf 'the secret: %s\\n' "$BIG_TOKEN"
`);
    let printed = "";
    let cliCpuMs: number | undefined;
    const result = await runCli(["run", flow, "--json"], {
      env: { BIG_TOKEN: secret },
      onStdout: (chunk, child) => {
        printed += chunk;
        if (cliCpuMs === undefined && printed.includes('"type":"run.finished"'))
          cliCpuMs = processTreeCpuMs(child.pid!);
      },
    });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).not.toContain(secret);
    const output = parseEvents(result.stdout)
      .map((e) => (e.type === "step.output" ? e.data : ""))
      .join("");
    expect(output).toBe(`${`${secret.slice(0, -1)}\n`.repeat(40)}the secret: ***\n`);
    // The quadratic masker took minutes on this; a linear one is done in well under a few seconds.
    // Counted in the CPU time of the CLI and what it started, up to its run's end, which waiting
    // for a core does not grow.
    console.log("CLICPU", cliCpuMs);
    expect(cliCpuMs).toBeLessThan(cpuPacedMs(15_000));
  });
});

describe("secrets through the server and a runner", () => {
  const procs: Proc[] = [];
  afterEach(async () => {
    await Promise.all(procs.splice(0).map((p) => p.kill()));
  });

  it("never shows or stores a secret in clear: API while running, SSE, run-status, logs, the database file", async () => {
    const home = tempDir();
    chmodSync(home, 0o755);
    const server = await startTestServer(home);
    procs.push(server.proc);
    procs.push(await startRunner(server.url, await runnerToken(server.url), { id: "s1" }));
    const minted = { line: secretValue("line"), file: secretValue("file") };
    const given = { db: secretValue("db"), api: secretValue("api") };
    const gateDir = stepDir();
    const gate = join(gateDir, "go");
    const workflow = mintingWorkflow(minted).replace(
      "  - name: use\n",
      `  - name: wait
    action: shell.run
    args:
      cwd: ${gateDir}
      script: |
        while [ ! -e ${gate} ]; do sleep 0.05; done
  - name: use\n`,
    );
    const runId = await submit(server.url, workflow, { DB_URL: given.db, API_TOKEN: given.api });
    const values = [...Object.values(minted), ...Object.values(given)];

    // While the run waits on the gate, everything the API serves is masked.
    await waitForRun(server.url, runId, (run) => run.steps.some((s) => s.name === "wait"));
    const whileRunning = [
      await api(server.url, "GET", `/api/runs/${runId}`),
      await api(server.url, "GET", "/api/runs"),
      await api(server.url, "GET", `/run-status?run_id=${runId}`),
    ];
    for (const { status, body } of whileRunning) {
      expect(status).toBe(200);
      for (const value of values) expect(JSON.stringify(body)).not.toContain(value);
    }
    expect(whileRunning[0]?.body).toMatchObject({
      status: "running",
      vars: { DB_URL: "***", API_TOKEN: "***", NEW_TOKEN: "***", FILE_TOKEN: "***" },
    });
    writeFileSync(gate, "");

    const run = await waitForRun(server.url, runId, isFinal);
    expect(run.status).toBe("success");
    const events = await readEvents(server.url, runId);
    const logs = await runCli(["runs", "logs", runId, "--server", server.url, "--token", adminToken]);
    const stored = databaseBytes(home);
    for (const value of values) {
      expect(JSON.stringify(events)).not.toContain(value);
      expect(logs.stdout).not.toContain(value);
      expect(stored).not.toContain(value);
    }
    expect(logs.stdout).toContain("later steps get real values");
    expect(logs.stdout).toContain("BOPS_EXPORT:NEW_TOKEN=***");
    expect(mode(home)).toBe("700");
    expect(mode(join(home, "runyard.db"))).toBe("600");
    expect(mode(join(home, "secret.key"))).toBe("600");
  });

  it("hands a secret exported before a server restart to later steps as its real value", async () => {
    const home = tempDir();
    const server = await startTestServer(home);
    procs.push(server.proc);
    const port = Number(new URL(server.url).port);
    procs.push(await startRunner(server.url, await runnerToken(server.url), { id: "s3" }));
    const minted = secretValue("minted");
    const gateDir = stepDir();
    const gate = join(gateDir, "go");
    const runId = await submit(
      server.url,
      `name: restarted
steps:
  - name: mint
    command: echo BOPS_EXPORT:SESSION_TOKEN=${minted}
    export_vars: true
  - name: wait
    command: while [ ! -e ${gate} ]; do sleep 0.05; done
    cwd: ${gateDir}
  - name: use
    command: test "$SESSION_TOKEN" = "${minted}" && echo "got the real value after the restart"
`,
    );
    await waitForRun(server.url, runId, (run) => run.steps.some((s) => s.name === "wait"));
    await server.proc.kill("SIGKILL");
    // The restarted server holds the runner's lease past its longest reconnect wait (fastTimings).
    const restarted = await startTestServer(home, {}, port);
    procs.push(restarted.proc);
    writeFileSync(gate, "");
    const run = await waitForRun(restarted.url, runId, isFinal);
    expect(run.status, JSON.stringify(run.error)).toBe("success");
    const events = await readEvents(restarted.url, runId);
    const printed = events.map((e) => (e.type === "step.output" ? e.data : "")).join("");
    expect(printed).toContain("got the real value after the restart");
    expect(JSON.stringify(events)).not.toContain(minted);
  });

  it("makes an existing home 0700 and database 0600 again, and reads its runs back with the same key", async () => {
    const home = tempDir();
    const first = await startTestServer(home);
    const runId = await submit(first.url, "name: w\nsteps:\n  - name: s\n    command: echo hi\n", {
      DB_PASSWORD: "pw-before-restart",
    });
    await first.proc.kill();
    chmodSync(home, 0o755);
    chmodSync(join(home, "runyard.db"), 0o644);
    const second = await startTestServer(home);
    procs.push(second.proc);
    expect(mode(home)).toBe("700");
    expect(mode(join(home, "runyard.db"))).toBe("600");
    const { body } = await api<{ vars: Record<string, string> }>(second.url, "GET", `/api/runs/${runId}`);
    expect(body.vars).toEqual({ DB_PASSWORD: "***" });
  });

  it("refuses to start on a database with another secret key, saying which key to use", async () => {
    const home = tempDir();
    const first = await startTestServer(home, { RUNYARD_SECRET_KEY: "a".repeat(40) });
    await submit(first.url, "name: w\nsteps:\n  - name: s\n    command: echo hi\n");
    await first.proc.kill();
    const port = await freePort();
    const second = startCli(["server", "--port", String(port), "--home", home], {
      RUNYARD_ADMIN_TOKEN: adminToken,
      RUNYARD_SECRET_KEY: "b".repeat(40),
    });
    procs.push(second);
    expect(await second.exited).not.toBe(0);
    expect(second.output()).toContain("cannot be decrypted with this secret key");
    expect(second.output()).toContain("RUNYARD_SECRET_KEY");
  });

  it("masks a secret in a webhook's error when the step that exported it fails", async () => {
    const received: Array<Record<string, unknown>> = [];
    const hook = createServer((request: IncomingMessage, response) => {
      let raw = "";
      request.on("data", (chunk) => {
        raw += chunk;
      });
      request.on("end", () => {
        received.push(JSON.parse(raw));
        response.writeHead(200).end();
      });
    });
    await new Promise<void>((resolve) => hook.listen(0, "127.0.0.1", resolve));
    const address = hook.address();
    const hookUrl = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}/hook`;
    try {
      const server = await startTestServer();
      procs.push(server.proc);
      procs.push(await startRunner(server.url, await runnerToken(server.url), { id: "s2" }));
      const minted = secretValue("minted");
      const runId = await submit(
        server.url,
        `name: hooked
notify: ${hookUrl}
steps:
  - name: mint
    action: cmd.run
    args:
      export_vars: true
      cmd: |
        echo BOPS_EXPORT:SESSION_TOKEN=${minted}
        test ${minted} = something-else
`,
      );
      const run = await waitForRun(server.url, runId, isFinal);
      expect(run.status).toBe("failed");
      await expect.poll(() => received.some((r) => r.step === null && r.status === "failed")).toBe(true);
      const failure = received.find((r) => r.step === "mint" && r.status === "failed");
      expect(failure?.error).toContain('"test *** = something-else" exited with code 1');
      expect(JSON.stringify(received)).not.toContain(minted);
      expect(JSON.stringify(run)).not.toContain(minted);
    } finally {
      await new Promise((resolve) => hook.close(resolve));
    }
  });
});

describe("runyard's own credentials", () => {
  const procs: Proc[] = [];
  afterEach(async () => {
    await Promise.all(procs.splice(0).map((p) => p.kill()));
  });

  it("never reach a step's environment under runyard up", async () => {
    const home = tempDir();
    mkdirSync(home, { recursive: true });
    const port = await freePort();
    const secretKey = secretValue("secret-key-of-at-least-32-characters");
    const up = startCli(["up", "--port", String(port), "--home", home], {
      RUNYARD_ADMIN_TOKEN: adminToken,
      RUNYARD_TOKEN: adminToken,
      ADOS_TOKEN: adminToken,
      RUNYARD_SECRET_KEY: secretKey,
      RUNYARD_HEARTBEAT_MS: "300",
    });
    procs.push(up);
    await up.waitFor("local runner connected");
    const url = `http://127.0.0.1:${port}`;
    const runId = await submit(url, "name: env\nsteps:\n  - name: print\n    command: env\n");
    const run = await waitForRun(url, runId, isFinal);
    expect(run.status).toBe("success");
    const events = await readEvents(url, runId);
    const printed = events.map((e) => (e.type === "step.output" ? e.data : "")).join("");
    expect(printed).toContain("PATH=");
    for (const name of ["RUNYARD_ADMIN_TOKEN", "RUNYARD_TOKEN", "ADOS_TOKEN", "RUNYARD_SECRET_KEY"]) {
      expect(printed).not.toMatch(new RegExp(`^${name}=`, "m"));
    }
    expect(printed).not.toContain(adminToken);
    expect(printed).not.toContain(secretKey);
    // With RUNYARD_SECRET_KEY given, no key file is written.
    expect(readdirSync(home)).not.toContain("secret.key");
  });
});

/**
 * The CPU time (user and system) process `pid` and what it started have used so far, from /proc:
 * its own threads', its reaped children's, and its live descendants' (the CLI's runner runs the
 * steps and masks their output in processes of its own).
 */
function processTreeCpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    // After the command's closing parenthesis: utime, stime, cutime and cstime are the 12th to 15th.
    const fields = stat.slice(stat.lastIndexOf(") ") + 2).split(" ");
    const ticks = fields.slice(11, 15).reduce((sum, field) => sum + Number(field), 0);
    const children = readdirSync(`/proc/${pid}/task`).flatMap((task) =>
      readFileSync(`/proc/${pid}/task/${task}/children`, "latin1").split(" ").filter(Boolean).map(Number),
    );
    return (ticks * 1000) / 100 + children.reduce((sum, child) => sum + processTreeCpuMs(child), 0);
  } catch {
    // gone meanwhile: its time is in its parent's reaped children's
    return 0;
  }
}
