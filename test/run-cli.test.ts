import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  cliPath,
  finished,
  parseEvents,
  processesWith,
  runCli,
  tempDir,
  writeWorkflow,
} from "./helpers/cli.js";

const local = "inventory:\n  hosts:\n    local: {}\n";

function flow(steps: string, extra = ""): string {
  return `version: v0.1\nname: t\n${extra}${local}steps:\n${steps}`;
}

describe("runyard run", () => {
  it("runs a workflow and exits 0, printing output prefixed by host", async () => {
    const file = writeWorkflow(
      flow(
        `  - name: hello\n    targets: [local]\n    action: cmd.run\n    args:\n      cmd: echo "hello"\n`,
      ),
    );
    const result = await runCli(["run", file]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("local | hello");
    expect(result.stdout).toMatch(/✔ hello \[local\] success \d+\.\d\ds/);
  });

  it("--json prints one spine event per line, numbered from 1, ending with run.finished", async () => {
    const file = writeWorkflow(flow(`  - name: a\n    action: cmd.run\n    args:\n      cmd: echo one\n`));
    const result = await runCli(["run", file, "--json"]);
    const events = parseEvents(result.stdout);
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect(new Set(events.map((e) => e.run_id)).size).toBe(1);
    const end = finished(events);
    expect(end.status).toBe("success");
    expect(end.steps).toEqual([
      expect.objectContaining({ name: "a", host: "local", status: "success", exit_code: 0, attempts: 1 }),
    ]);
  });

  it("cmd.run stops at the first failing line and names it", async () => {
    const dir = tempDir();
    const file = writeWorkflow(
      flow(
        `  - name: lines\n    action: cmd.run\n    args:\n      cmd: |\n        echo first\n        false\n        touch ${dir}/third\n`,
      ),
    );
    const result = await runCli(["run", file, "--json"]);
    expect(result.code).toBe(1);
    const end = finished(parseEvents(result.stdout));
    expect(end.status).toBe("failed");
    expect(end.error?.message).toContain('line 2 "false" exited with code 1');
    expect(existsSync(join(dir, "third"))).toBe(false);
  });

  it("shell.run runs the whole script in one shell", async () => {
    const file = writeWorkflow(
      flow(
        `  - name: script\n    action: shell.run\n    args:\n      script: |\n        X=kept\n        false\n        echo "still $X"\n`,
      ),
    );
    const result = await runCli(["run", file]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("local | still kept");
  });

  it("passes exported variables as environment, never as shell code", async () => {
    const dir = tempDir();
    const pwned = join(dir, "pwned");
    const file = writeWorkflow(
      flow(
        `  - name: export\n    action: shell.run\n    args:\n      export_vars: true\n      script: |\n        echo 'BOPS_EXPORT:X=$(touch ${pwned})'\n` +
          `  - name: use\n    action: shell.run\n    args:\n      script: |\n        echo "got: \${X}"\n`,
      ),
    );
    const result = await runCli(["run", file, "--json"]);
    expect(result.code).toBe(0);
    const events = parseEvents(result.stdout);
    const output = events
      .flatMap((e) => (e.type === "step.output" && e.step === "use" ? [e.data] : []))
      .join("");
    expect(output).toContain(`got: $(touch ${pwned})`);
    expect(finished(events).vars?.X).toBe(`$(touch ${pwned})`);
    expect(existsSync(pwned)).toBe(false);
  });

  it("exports multi-line values through the $RUNYARD_OUTPUT file", async () => {
    const file = writeWorkflow(
      flow(
        `  - name: out\n    action: shell.run\n    args:\n      script: |\n        printf 'NOTE<<END\\nline 1\\nline 2\\nEND\\n' >> "$RUNYARD_OUTPUT"\n` +
          `  - name: read\n    action: shell.run\n    args:\n      script: printf '%s' "$NOTE" | wc -l\n`,
      ),
    );
    const result = await runCli(["run", file, "--json"]);
    expect(finished(parseEvents(result.stdout)).vars?.NOTE).toBe("line 1\nline 2");
  });

  it("reports two targets exporting different values for one name, naming both", async () => {
    const yaml = `version: v0.1\nname: t\ninventory:\n  hosts:\n    a: {}\n    b: {}\nsteps:\n  - name: both\n    targets: [a, b]\n    action: shell.run\n    args:\n      export_vars: true\n      script: echo "BOPS_EXPORT:WHO=$RUNYARD_HOST"\n`;
    const result = await runCli(["run", writeWorkflow(yaml), "--json"]);
    expect(result.code).toBe(1);
    const end = finished(parseEvents(result.stdout));
    expect(end.error?.code).toBe("EXPORT_CONFLICT");
    expect(end.error?.message).toMatch(/hosts a and b exported different values for WHO/);
  });

  it("runs a step's targets in parallel", async () => {
    // Each host waits for the other's file: this only finishes if both run at once.
    const dir = tempDir();
    const yaml = `version: v0.1\nname: t\ninventory:\n  hosts:\n    a: {}\n    b: {}\nsteps:\n  - name: rendezvous\n    targets: [a, b]\n    action: shell.run\n    timeout_seconds: 20\n    args:\n      script: |\n        touch ${dir}/$RUNYARD_HOST\n        other=$([ "$RUNYARD_HOST" = a ] && echo b || echo a)\n        while [ ! -e ${dir}/$other ]; do sleep 0.05; done\n`;
    const result = await runCli(["run", writeWorkflow(yaml)]);
    expect(result.code).toBe(0);
  });

  it('skips steps whose when is false, and true equals the string "true"', async () => {
    const file = writeWorkflow(
      flow(
        `  - name: yes\n    action: cmd.run\n    when: \${OK} == true\n    args:\n      cmd: echo ran-yes\n` +
          `  - name: no\n    action: cmd.run\n    when: \${COUNT} > 10\n    args:\n      cmd: echo ran-no\n`,
        'vars:\n  OK: "true"\n  COUNT: 9\n',
      ),
    );
    const result = await runCli(["run", file, "--json"]);
    expect(result.code).toBe(0);
    const steps = finished(parseEvents(result.stdout)).steps ?? [];
    expect(steps.map((s) => [s.name, s.status])).toEqual([
      ["yes", "success"],
      ["no", "skipped"],
    ]);
  });

  it("says why a skipped step did not run", async () => {
    const file = writeWorkflow(
      flow(
        `  - name: later\n    action: cmd.run\n    when: \${COUNT} > 10\n    args:\n      cmd: echo no\n`,
        "vars:\n  COUNT: 9\n",
      ),
    );
    const result = await runCli(["run", file]);
    // biome-ignore lint/suspicious/noTemplateCurlyInString: ${COUNT} is workflow syntax
    expect(result.stdout).toContain("↷ later [local] skipped (when: ${COUNT} > 10)");
    const events = parseEvents((await runCli(["run", file, "--json"])).stdout);
    const skipped = events.find((e) => e.type === "step.finished");
    // biome-ignore lint/suspicious/noTemplateCurlyInString: ${COUNT} is workflow syntax
    expect(skipped?.type === "step.finished" && skipped.reason).toBe("when: ${COUNT} > 10");
  });

  it("fails a step whose expect_vars are missing, unless continue_on_error", async () => {
    const strict = writeWorkflow(
      flow(`  - name: s\n    action: cmd.run\n    expect_vars: [NEEDED]\n    args:\n      cmd: echo none\n`),
    );
    const strictRun = finished(parseEvents((await runCli(["run", strict, "--json"])).stdout));
    expect(strictRun.status).toBe("failed");
    expect(strictRun.error?.code).toBe("EXPECT_VARS_MISSING");

    const lenient = writeWorkflow(
      flow(
        `  - name: s\n    action: cmd.run\n    continue_on_error: true\n    expect_vars: [NEEDED]\n    args:\n      cmd: echo none\n  - name: after\n    action: cmd.run\n    args:\n      cmd: echo after\n`,
      ),
    );
    const result = await runCli(["run", lenient, "--json"]);
    expect(result.code).toBe(0);
    const steps = finished(parseEvents(result.stdout)).steps ?? [];
    expect(steps.map((s) => s.status)).toEqual(["failed", "success"]);
  });

  it("retries with exponential backoff and counts attempts", async () => {
    const dir = tempDir();
    const file = writeWorkflow(
      flow(
        `  - name: flaky\n    action: shell.run\n    retry_count: 3\n    retry_delay_seconds: 0.05\n    args:\n      script: |\n        n=$(ls ${dir} | wc -l)\n        touch ${dir}/try-$n\n        [ "$n" -ge 2 ]\n`,
      ),
    );
    const result = await runCli(["run", file, "--json"]);
    expect(result.code).toBe(0);
    const events = parseEvents(result.stdout);
    const retries = events.flatMap((e) => (e.type === "step.retrying" ? [e.delay_ms] : []));
    expect(retries).toEqual([50, 100]);
    expect(finished(events).steps?.[0]).toMatchObject({ status: "success", attempts: 3 });
  });

  it("records a continue_on_error step as failed and the run as a success", async () => {
    const file = writeWorkflow(
      flow(`  - name: bad\n    action: cmd.run\n    continue_on_error: true\n    args:\n      cmd: exit 3\n`),
    );
    const result = await runCli(["run", file, "--json"]);
    expect(result.code).toBe(0);
    expect(finished(parseEvents(result.stdout)).steps?.[0]).toMatchObject({ status: "failed", exit_code: 3 });
  });

  it("stops the whole process group on timeout and leaves no process behind", async () => {
    const marker = `98${Math.floor(Math.random() * 1e6)}.5`;
    const file = writeWorkflow(
      flow(
        `  - name: slow\n    action: shell.run\n    timeout_seconds: 0.5\n    args:\n      script: |\n        sleep ${marker} &\n        sleep ${marker}\n`,
      ),
    );
    const result = await runCli(["run", file, "--json"], { env: { RUNYARD_KILL_GRACE_MS: "200" } });
    expect(result.code).toBe(1);
    const end = finished(parseEvents(result.stdout));
    expect(end.status).toBe("timeout");
    expect(end.steps?.[0]?.status).toBe("timeout");
    expect(processesWith(marker)).toEqual([]);
  });

  it("cancels on Ctrl-C: exit 130, status canceled, no process left", async () => {
    const marker = `97${Math.floor(Math.random() * 1e6)}.5`;
    const file = writeWorkflow(
      flow(
        `  - name: long\n    action: shell.run\n    args:\n      script: |\n        sleep ${marker} &\n        echo started\n        wait\n`,
      ),
    );
    let signalled = false;
    const result = await runCli(["run", file, "--json"], {
      env: { RUNYARD_KILL_GRACE_MS: "200" },
      onStdout: (chunk, child) => {
        if (!signalled && chunk.includes("started")) {
          signalled = true;
          child.kill("SIGINT");
        }
      },
    });
    expect(result.code).toBe(130);
    expect(finished(parseEvents(result.stdout)).status).toBe("canceled");
    expect(processesWith(marker)).toEqual([]);
  });

  it("gives steps the environment runyard was started with, plus workflow env and --var", async () => {
    const file = writeWorkflow(
      flow(
        `  - name: env\n    action: shell.run\n    args:\n      script: echo "$FROM_SHELL $FROM_FLOW $FROM_VAR"\n`,
        "env:\n  FROM_FLOW: flow\n",
      ),
    );
    const result = await runCli(["run", file, "--var", "FROM_VAR=var"], { env: { FROM_SHELL: "shell" } });
    expect(result.stdout).toContain("local | shell flow var");
  });

  it("caps the log at max_output_bytes, keeps the full output on disk, and reads exports past the cap", async () => {
    const out = tempDir();
    const file = writeWorkflow(
      flow(
        `  - name: chatty\n    action: shell.run\n    args:\n      export_vars: true\n      max_output_bytes: 100\n      output_path: ${out}\n      script: |\n        for i in $(seq 1 500); do echo "line $i"; done\n        echo BOPS_EXPORT:DONE=yes\n`,
      ),
    );
    const result = await runCli(["run", file, "--json"]);
    const events = parseEvents(result.stdout);
    const logged = events.flatMap((e) => (e.type === "step.output" ? [e.data] : [])).join("");
    expect(logged).toContain("output capped at 100 bytes");
    expect(logged).not.toContain("line 500");
    expect(finished(events).vars?.DONE).toBe("yes");
    const files = readdirSync(out);
    const stdoutFile = files.find((f) => f.endsWith(".stdout.log"));
    expect(stdoutFile).toBeDefined();
    expect(readFileSync(join(out, stdoutFile ?? ""), "utf8")).toContain("line 500");
  });

  it("masks secrets from *_TOKEN env in output, vars and the final line", async () => {
    const file = writeWorkflow(
      flow(
        `  - name: leak\n    action: shell.run\n    args:\n      export_vars: true\n      script: |\n        echo "token is $MY_TOKEN"\n        echo "BOPS_EXPORT:COPY=$MY_TOKEN"\n`,
      ),
    );
    const result = await runCli(["run", file, "--json"], { env: { MY_TOKEN: "s3cr3t-value-123" } });
    expect(result.stdout).not.toContain("s3cr3t-value-123");
    expect(result.stdout).toContain("token is ***");
    expect(finished(parseEvents(result.stdout)).vars?.COPY).toBe("***");
  });

  it("prints characters cut between writes whole, bytes that are not UTF-8 as U+FFFD, to a pipe and to a file", async () => {
    const dir = tempDir();
    // \342\202\254 is €, printed in two writes; \377 is never UTF-8. Then 2 MB of lines of
    // characters of 2, 3 and 4 bytes, after one byte of ASCII, so that reads cut them anywhere.
    const file = writeWorkflow(
      flow(
        `  - name: chars\n    action: shell.run\n    args:\n      script: |\n        printf 'a\\342\\202'; sleep 0.1; printf '\\254b\\n'\n        printf 'c\\377d\\n'\n        printf x; yes 'é€😀' | head -n 200000\n`,
      ),
      dir,
    );
    const expected = `local | a€b\nlocal | c\ufffdd\nlocal | x${"é€😀\nlocal | ".repeat(199_999)}é€😀\n`;
    const piped = await runCli(["run", file]);
    expect(piped.code).toBe(0);
    expect(piped.stdout.includes(expected)).toBe(true);
    // A file is written as the process's stdout is: synchronously, from one buffer reused.
    const out = join(dir, "out.txt");
    const code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn("sh", ["-c", '"$@" > "$OUT"', "sh", process.execPath, cliPath, "run", file], {
        env: { ...process.env, OUT: out, NO_COLOR: "1", RUNYARD_SERVER_URL: "" },
        stdio: "ignore",
      });
      child.on("error", reject);
      child.on("close", resolve);
    });
    expect(code).toBe(0);
    expect(readFileSync(out, "utf8").includes(expected)).toBe(true);
  });

  it("reports duration, peak memory and CPU time per step", async () => {
    const file = writeWorkflow(
      flow(
        `  - name: work\n    action: cmd.run\n    args:\n      cmd: python3 -c "b = bytearray(60*1024*1024); import time; time.sleep(0.4)"\n`,
      ),
    );
    const events = parseEvents((await runCli(["run", file, "--json"])).stdout);
    const done = events.find((e) => e.type === "step.finished");
    expect(done?.type === "step.finished" && done.duration_ms).toBeGreaterThan(300);
    expect(done?.type === "step.finished" && done.memory_peak_bytes).toBeGreaterThan(50 * 1024 * 1024);
    expect(done?.type === "step.finished" && done.cpu_ms).toBeGreaterThanOrEqual(0);
  });

  it("ends after its fork-server, so a shell's `times` counts what the steps spent and no helper is left", async () => {
    const dir = tempDir();
    // The step's shell reports its parent (the fork-server), then burns 0.6 s of CPU time.
    const burn = `python3 -c "import time; t = time.process_time(); all(iter(lambda: time.process_time() - t < 0.6, False))"`;
    const file = writeWorkflow(
      flow(
        `  - name: burn\n    action: shell.run\n    args:\n      script: |\n        echo "helper=$PPID"\n        ${burn}\n`,
      ),
      dir,
    );
    const events = join(dir, "events.jsonl");
    // As a user's shell times it: `times` gives the CPU of every child the shell waited for and
    // of their children that they waited for in turn.
    const script =
      '"$@" > "$EVENTS" || exit $?; test -e /proc/$(sed -n "s/.*helper=\\([0-9]*\\).*/\\1/p" "$EVENTS" | head -n 1) && echo helper-alive; times';
    const shell = await new Promise<{ code: number | null; stdout: string }>((resolve, reject) => {
      const child = spawn("sh", ["-c", script, "sh", process.execPath, cliPath, "run", file, "--json"], {
        env: { ...process.env, EVENTS: events, RUNYARD_SERVER_URL: "" },
        stdio: ["ignore", "pipe", "inherit"],
      });
      let stdout = "";
      child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
        stdout += chunk;
      });
      child.on("error", reject);
      child.on("close", (code) => resolve({ code, stdout }));
    });
    expect(shell.code).toBe(0);
    const run = parseEvents(readFileSync(events, "utf8"));
    expect(run.some((e) => e.type === "step.output" && /helper=\d+/.test(e.data))).toBe(true);
    const step = run.find((e) => e.type === "step.finished");
    const stepCpuMs = step?.type === "step.finished" ? (step.cpu_ms ?? 0) : 0;
    expect(stepCpuMs).toBeGreaterThanOrEqual(550);
    // `times` prints the shell's own user and system time, then its children's.
    const children = shell.stdout.trim().split("\n").at(-1) ?? "";
    const [user = 0, system = 0] = [...children.matchAll(/(\d+)m([\d.]+)s/g)].map(
      (m) => Number(m[1]) * 60 + Number(m[2]),
    );
    expect((user + system) * 1000).toBeGreaterThanOrEqual(stepCpuMs);
    expect(shell.stdout).not.toContain("helper-alive");
  });

  it("runs playbook-format steps: fail_fast false goes on, condition skips", async () => {
    const yaml = `name: pb\nsteps:\n  - name: lint\n    command: exit 1\n    fail_fast: false\n  - name: optional\n    command: echo optional\n    condition: lint_enabled == true\n  - name: test\n    command: echo tested\n`;
    const result = await runCli(["run", writeWorkflow(yaml), "--json"]);
    expect(result.code).toBe(0);
    const steps = finished(parseEvents(result.stdout)).steps ?? [];
    expect(steps.map((s) => [s.name, s.status])).toEqual([
      ["lint", "failed"],
      ["optional", "skipped"],
      ["test", "success"],
    ]);
  });
});

describe("invalid input", () => {
  it("reports every problem at once with file:line:col and exits 2", async () => {
    const file = writeWorkflow(
      `version: v0.1\nname: t\ninventory:\n  hosts:\n    local: {}\nsteps:\n  - name: a\n    targts: [local]\n    action: cmd.runn\n    args:\n      cmd: echo\n  - name: a\n    targets: [nowhere]\n    action: cmd.run\n    args:\n      cmd: echo\n`,
    );
    const result = await runCli(["run", file]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`${file}:8:5: unknown key "targts"`);
    expect(result.stderr).toContain('did you mean "targets"');
    expect(result.stderr).toMatch(new RegExp(`${file}:9:\\d+: unknown action "cmd.runn"`));
    expect(result.stderr).toMatch(/duplicate step name "a"/);
    expect(result.stderr).toMatch(/"nowhere"/);
  });

  it("validate says a good file is valid and exits 0", async () => {
    const file = writeWorkflow(flow(`  - name: a\n    action: cmd.run\n    args:\n      cmd: echo\n`));
    const result = await runCli(["validate", file]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("valid");
  });

  it("a missing file is a clear error with exit 2", async () => {
    const result = await runCli(["run", "/nonexistent/flow.yaml"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('workflow file "/nonexistent/flow.yaml" does not exist');
  });

  it("a malformed --var is a usage error with a hint", async () => {
    const file = writeWorkflow(flow(`  - name: a\n    action: cmd.run\n    args:\n      cmd: echo\n`));
    const result = await runCli(["run", file, "--var", "1X"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("hint:");
  });

  it("a bad setting in the environment stops a local run before any step, naming the variable", async () => {
    const dir = tempDir();
    const marker = join(dir, "ran");
    const file = writeWorkflow(
      flow(`  - name: a\n    action: cmd.run\n    args:\n      cmd: touch ${marker}\n`),
    );
    for (const [env, problem] of [
      [
        { RUNYARD_KILL_GRACE_MS: "soon" },
        "RUNYARD_KILL_GRACE_MS: Invalid input: expected number, received NaN",
      ],
      [
        { RUNYARD_MAX_WORKFLOW_BYTES: "-1" },
        "RUNYARD_MAX_WORKFLOW_BYTES: Too small: expected number to be >0",
      ],
      [{ RUNYARD_PORT: "eighty" }, "RUNYARD_PORT: Invalid input: expected number, received NaN"],
    ] as const) {
      const result = await runCli(["run", file], { env: { RUNYARD_SERVER_URL: "", ...env } });
      expect(result.stderr).toBe(`error: invalid configuration:\n  ${problem}\n`);
      expect(result.code).toBe(2);
      expect(existsSync(marker)).toBe(false);
    }
  });

  it("an unknown command is a usage error", async () => {
    expect((await runCli(["frobnicate"])).code).toBe(2);
  });
});
