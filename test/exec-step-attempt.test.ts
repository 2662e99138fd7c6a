import { randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { StepAttemptRequest, type StepAttemptRequestInput } from "../src/core/step-attempt.js";
import { createExecutor, type ExecutorConfig } from "../src/exec/create-executor.js";
import { runStepAttempt, type StepAttemptOptions } from "../src/exec/step-attempt.js";

const baseEnv = { PATH: process.env.PATH ?? "/usr/bin:/bin" };
const executor = createExecutor({ baseEnv });
afterAll(() => executor.close());
const scratch = mkdtempSync(join(tmpdir(), "runyard-step-attempt-test-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const requestBase = { run_id: "run1", step: "build", host: "local", attempt: 1, env: {} };

async function attempt(
  input: Partial<StepAttemptRequestInput> & Pick<StepAttemptRequestInput, "script">,
  options: Partial<StepAttemptOptions> = {},
  withExecutor: Partial<ExecutorConfig> = {},
) {
  const request = StepAttemptRequest.parse({
    run_id: "run1",
    step: "build",
    host: "local",
    attempt: 1,
    action: "cmd.run",
    env: {},
    ...input,
  });
  const out = { stdout: "", stderr: "", chunks: [] as string[] };
  const own = Object.keys(withExecutor).length > 0 ? createExecutor({ baseEnv, ...withExecutor }) : undefined;
  const result = await runStepAttempt(own ?? executor, request, {
    killGraceMs: 1000,
    ...options,
    onOutput: (stream, data) => {
      out[stream] += data;
      out.chunks.push(data);
      options.onOutput?.(stream, data);
    },
  });
  own?.close();
  return { result, ...out };
}

describe("cmd.run", () => {
  it("runs line after line and stops at the first failing line, naming it", async () => {
    const { result, stdout } = await attempt({ script: "echo one\nfalse\necho three\n" });
    expect(stdout).toBe("one\n");
    expect(result).toMatchObject({ status: "failed", exit_code: 1 });
    expect(result.error).toMatchObject({ code: "STEP_FAILED", message: 'line 2 "false" exited with code 1' });
  });

  it("skips blank and comment lines, and names a line by its number in the script", async () => {
    const { result, stdout } = await attempt({
      script: "# setup\n\necho a\n   # indented comment\nexit 4\n",
    });
    expect(stdout).toBe("a\n");
    expect(result.error?.message).toBe('line 5 "exit 4" exited with code 4');
  });

  it("runs each line in its own shell", async () => {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: shell syntax
    const { result, stdout } = await attempt({ script: "X=1; cd /\necho ${X:-unset} $(pwd)", cwd: scratch });
    expect(result.status).toBe("success");
    expect(stdout).toBe(`unset ${scratch}\n`);
  });

  it("runs a plain line without a shell, in the step's folder, with PWD naming it", async () => {
    const { result, stdout } = await attempt({ script: "env", cwd: scratch });
    expect(result.status).toBe("success");
    expect(stdout).toContain(`PWD=${scratch}\n`);
  });

  it("reports a plain line whose program is missing as the shell does", async () => {
    const { result, stderr } = await attempt({ script: "no-such-program-xyz --version" });
    expect(result).toMatchObject({ status: "failed", exit_code: 127 });
    expect(result.error?.code).toBe("STEP_FAILED");
    expect(stderr).toContain("no-such-program-xyz: command not found");
  });

  it("succeeds with exit code 0 when every line does", async () => {
    const { result } = await attempt({ script: "true\necho ok" });
    expect(result).toMatchObject({ status: "success", exit_code: 0 });
    expect(result.error).toBeUndefined();
  });

  it("applies the timeout to all lines together", async () => {
    // Each line alone fits in the timeout; the three together do not, so the last never runs.
    const { result, stdout } = await attempt({
      script: "sleep 0.6\nsleep 0.6\necho the last line ran",
      timeout_ms: 1000,
    });
    expect(result.status).toBe("timeout");
    expect(result.error).toMatchObject({ code: "TIMEOUT", message: "step timed out after 1s" });
    expect(stdout).not.toContain("the last line ran");
  });

  it("reports a missing shell as SPAWN_FAILED", async () => {
    const { result } = await attempt({ script: "echo hi", shell: "bashx" });
    expect(result).toMatchObject({ status: "failed", exit_code: null });
    expect(result.error).toMatchObject({
      code: "SPAWN_FAILED",
      message: 'cannot start "bashx": not found in PATH',
    });
  });

  it("is canceled through its signal", async () => {
    const controller = new AbortController();
    const { result, stdout } = await attempt(
      { script: "echo ready; sleep 100\necho never" },
      {
        signal: controller.signal,
        onOutput: (_stream, data) => {
          if (data.includes("ready")) controller.abort();
        },
      },
    );
    expect(stdout).toBe("ready\n");
    expect(result.status).toBe("canceled");
    expect(result.error?.code).toBe("CANCELED");
  });
});

describe("shell.run", () => {
  it("runs the script whole in one shell", async () => {
    const script = 'X=1\nif [ "$X" = 1 ]; then\n  echo "in one shell: $X"\nfi\n';
    const { result, stdout } = await attempt({ action: "shell.run", script });
    expect(result).toMatchObject({ status: "success", exit_code: 0 });
    expect(stdout).toBe("in one shell: 1\n");
  });

  it("takes flags in the shell, such as bash -e", async () => {
    const { result, stdout } = await attempt({
      action: "shell.run",
      shell: "bash -e",
      script: "echo a\nfalse\necho b\n",
    });
    expect(stdout).toBe("a\n");
    expect(result).toMatchObject({ status: "failed", exit_code: 1 });
    expect(result.error).toMatchObject({ code: "STEP_FAILED", message: "script exited with code 1" });
  });

  it("runs under sh", async () => {
    const { stdout } = await attempt({
      action: "shell.run",
      shell: "sh",
      script: 'echo "$0" | grep -c script',
    });
    expect(stdout).toBe("1\n");
  });

  it("runs a script far larger than one command-line argument may be", async () => {
    const script = `${": padding padding padding padding padding padding padding\n".repeat(10_000)}echo done\n`;
    expect(script.length).toBeGreaterThan(256 * 1024);
    const { result, stdout } = await attempt({ action: "shell.run", script });
    expect(result.status).toBe("success");
    expect(stdout).toBe("done\n");
  });
});

describe("environment", () => {
  it("lays the request env over the base env and adds the RUNYARD_ variables", async () => {
    const { stdout } = await attempt(
      {
        script: 'echo "$FROM_BASE $FROM_STEP $RUNYARD_RUN_ID $RUNYARD_STEP $RUNYARD_HOST"',
        env: { FROM_STEP: "step", OVERRIDDEN: "step" },
      },
      {},
      { baseEnv: { ...baseEnv, FROM_BASE: "base", OVERRIDDEN: "base" } },
    );
    expect(stdout).toBe("base step run1 build local\n");
  });

  it("gives each attempt its own $RUNYARD_OUTPUT in a private folder, made only when the step writes it", async () => {
    const tmpDir = mkdtempSync(join(scratch, "tmp-"));
    const own = createExecutor({ baseEnv, tmpDir });
    const run = async (script: string) => {
      const request = StepAttemptRequest.parse({ ...requestBase, action: "shell.run", script });
      let stdout = "";
      const result = await runStepAttempt(own, request, {
        killGraceMs: 1000,
        onOutput: (stream, data) => {
          if (stream === "stdout") stdout += data;
        },
      });
      return { result, path: stdout.trim() };
    };
    const untouched = await run('echo "$RUNYARD_OUTPUT"; test ! -e "$RUNYARD_OUTPUT"');
    const written = await run('echo "$RUNYARD_OUTPUT"; echo A=1 >> "$RUNYARD_OUTPUT"');
    expect(untouched.result.status).toBe("success");
    expect(written.result.exports).toEqual({ A: "1" });
    expect(written.path).not.toBe(untouched.path);
    const folder = dirname(written.path);
    expect(dirname(folder)).toBe(tmpDir);
    expect(statSync(folder).mode & 0o777).toBe(0o700);
    expect(readdirSync(folder)).toEqual([]);
    own.close();
    expect(readdirSync(tmpDir)).toEqual([]);
  });

  it("runs a small shell.run script without writing it to a file", async () => {
    const tmpDir = mkdtempSync(join(scratch, "tmp-"));
    const { stdout } = await attempt(
      { action: "shell.run", script: 'ls "$(dirname "$RUNYARD_OUTPUT")" | wc -l' },
      {},
      { tmpDir },
    );
    expect(stdout.trim()).toBe("0");
  });
});

describe("exports", () => {
  it("reads BOPS_EXPORT lines when export_vars is set", async () => {
    const { result } = await attempt({
      script: "echo BOPS_EXPORT:VERSION=1.2.3\necho BOPS_EXPORT:OK=true",
      export_vars: true,
    });
    expect(result.exports).toEqual({ VERSION: "1.2.3", OK: "true" });
  });

  it("ends an export line with the command that printed it", async () => {
    const { result } = await attempt({ script: "printf BOPS_EXPORT:A=1\necho more", export_vars: true });
    expect(result.exports).toEqual({ A: "1" });
  });

  it("ignores BOPS_EXPORT lines without export_vars", async () => {
    const { result } = await attempt({ script: "echo BOPS_EXPORT:VERSION=1.2.3" });
    expect(result.exports).toEqual({});
  });

  it("keeps an exported value literally: shell syntax in it never runs", async () => {
    const target = join(scratch, `pwned-${randomUUID()}`);
    const { result } = await attempt({
      script: `echo 'BOPS_EXPORT:X=$(touch ${target})'`,
      export_vars: true,
    });
    expect(result.exports.X).toBe(`$(touch ${target})`);
    expect(existsSync(target)).toBe(false);
  });

  it("warns about an invalid export name and goes on", async () => {
    const { result } = await attempt({
      script: "echo BOPS_EXPORT:9LIVES=x\necho BOPS_EXPORT:OK=1",
      export_vars: true,
    });
    expect(result.exports).toEqual({ OK: "1" });
    expect(result.warnings).toHaveLength(1);
    expect(result.warnings[0]).toContain('"9LIVES"');
  });

  it("reads $RUNYARD_OUTPUT, multi-line values included, with or without export_vars", async () => {
    const script = [
      'echo "A=1" >> "$RUNYARD_OUTPUT"',
      `printf 'NOTES<<EOF\\nfirst line\\nsecond line\\nEOF\\n' >> "$RUNYARD_OUTPUT"`,
    ].join("\n");
    const { result } = await attempt({ action: "shell.run", script });
    expect(result.exports).toEqual({ A: "1", NOTES: "first line\nsecond line" });
  });

  it("returns exports even when the step fails", async () => {
    const { result } = await attempt({
      script: 'echo BOPS_EXPORT:FROM_LINE=1\necho FROM_FILE=2 >> "$RUNYARD_OUTPUT"\nexit 7',
      export_vars: true,
    });
    expect(result.status).toBe("failed");
    expect(result.exports).toEqual({ FROM_LINE: "1", FROM_FILE: "2" });
  });
});

describe("masking", () => {
  it("masks a secret written in two parts, in the output and in the kept files", async () => {
    const outputPath = join(scratch, `masked-${randomUUID()}`);
    const { result, stdout, chunks } = await attempt({
      action: "shell.run",
      script: "printf 'ab'; sleep 0.2; printf 'cdef\\n'; echo abcdef >&2",
      secrets: ["abcdef"],
      output_path: outputPath,
    });
    expect(stdout).toBe("***\n");
    expect(chunks.join("")).not.toContain("abcdef");
    expect(result.output_files).toHaveLength(2);
    const [stdoutFile, stderrFile] = result.output_files;
    expect(readFileSync(stdoutFile!, "utf8")).toBe("***\n");
    expect(readFileSync(stderrFile!, "utf8")).toBe("***\n");
  });

  it("masks values of secret-named env variables and the secrets in an error message", async () => {
    const { result, stdout } = await attempt({
      script: 'echo "token is $API_TOKEN"\ntest "$API_TOKEN" = s3cr3t-value',
      env: { API_TOKEN: "s3cr3t-value" },
    });
    expect(stdout).toBe("token is ***\n");
    expect(result.status).toBe("success");
    const failed = await attempt({ script: "false s3cr3t-value", secrets: ["s3cr3t-value"] });
    expect(failed.result.error?.message).toBe('line 1 "false ***" exited with code 1');
  });
});

describe("output cap and kept output", () => {
  it("stops passing output at max_output_bytes, says so once, and still reads exports past the cap", async () => {
    const outputPath = join(scratch, `capped-${randomUUID()}`);
    const { result, stdout, stderr } = await attempt({
      script: "seq 1 1000\necho BOPS_EXPORT:LAST=yes",
      export_vars: true,
      max_output_bytes: 10,
      output_path: outputPath,
    });
    expect(result.status).toBe("success");
    expect(result.exports).toEqual({ LAST: "yes" });
    expect(stdout).toBe("1\n2\n3\n4\n5\n");
    const [stdoutFile, stderrFile] = result.output_files;
    const full = readFileSync(stdoutFile!, "utf8");
    expect(full.endsWith("1000\nBOPS_EXPORT:LAST=yes\n")).toBe(true);
    const hidden = Buffer.byteLength(full) - 10;
    expect(stderr).toBe(
      `[runyard] output capped at 10 bytes: ${hidden} more bytes not shown; full output in ${stdoutFile} and ${stderrFile}\n`,
    );
  });

  it("never passes half a UTF-8 character", async () => {
    const { stdout, stderr } = await attempt({ script: "printf 'a€€'", max_output_bytes: 5 });
    expect(stdout).toBe("a€");
    expect(stderr).toBe("[runyard] output capped at 5 bytes: 3 more bytes not shown\n");
  });

  it("keeps the full output under safe names in a private folder, with the attempt number after the first", async () => {
    const outputPath = join(scratch, `kept-${randomUUID()}`, "nested");
    const { result } = await attempt({
      script: "echo out\necho err >&2",
      step: "build & test",
      host: "web/1",
      attempt: 2,
      output_path: outputPath,
    });
    expect(result.output_files).toEqual([
      join(outputPath, "run1-build___test-web_1.attempt2.stdout.log"),
      join(outputPath, "run1-build___test-web_1.attempt2.stderr.log"),
    ]);
    expect(readFileSync(result.output_files[0]!, "utf8")).toBe("out\n");
    expect(readFileSync(result.output_files[1]!, "utf8")).toBe("err\n");
    expect(statSync(outputPath).mode & 0o777).toBe(0o700);
  });
});

describe("resources", () => {
  it("sums CPU time over lines and keeps the largest memory peak", async () => {
    const burn = "import time\\nwhile time.process_time() < 0.3: pass";
    const { result } = await attempt({ script: `python3 -c $'${burn}'\npython3 -c $'${burn}'` });
    expect(result.status).toBe("success");
    expect(result.cpu_ms).toBeGreaterThan(300);
    expect(result.memory_peak_bytes).toBeGreaterThan(0);
  });
});
