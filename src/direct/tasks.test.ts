import { describe, expect, test } from "vitest";
import type { StepAttemptRequest, StepAttemptResult, StepRunner } from "../core/step-attempt.js";
import { DirectTaskTable, TaskOutputLog } from "./tasks.js";

const request: StepAttemptRequest = {
  run_id: "run-1",
  step: "build",
  host: "web",
  attempt: 1,
  action: "shell.run",
  script: "true",
  shell: "bash",
  env: {},
  export_vars: false,
  secrets: [],
  secret_names: [],
};

const success: StepAttemptResult = {
  status: "success",
  exit_code: 0,
  exports: {},
  secret_exports: [],
  duration_ms: 1,
  memory_peak_bytes: 0,
  cpu_ms: 0,
  output_files: [],
  warnings: [],
};

/** Ends each attempt when the test calls `finish`; never ends it by itself. */
function manualRunner(): StepRunner & { finish: () => void } {
  const pending: ((result: StepAttemptResult) => void)[] = [];
  return {
    runAttempt: () => new Promise((resolve) => pending.push(resolve)),
    finish: () => {
      for (const resolve of pending.splice(0)) resolve(success);
    },
  };
}

describe("DirectTaskTable", () => {
  test("finished tasks are forgotten an hour after they end; running ones are kept", async () => {
    let now = 0;
    const table = new DirectTaskTable({ now: () => now });
    const runner = manualRunner();
    const finished = table.start(request, runner);
    runner.finish();
    await finished.done;
    const running = table.start(request, runner);

    now = 60 * 60 * 1000;
    expect(table.get(finished.id)).toBe(finished);
    now += 1;
    expect(table.get(finished.id)).toBeUndefined();
    expect(table.get(running.id)).toBe(running);
  });

  test("only the newest finished tasks are kept, up to the count", async () => {
    const table = new DirectTaskTable({ keepFinishedCount: 2 });
    const runner = manualRunner();
    const tasks = [table.start(request, runner), table.start(request, runner), table.start(request, runner)];
    runner.finish();
    await Promise.all(tasks.map((task) => task.done));
    expect(tasks.map((task) => table.get(task.id) !== undefined)).toEqual([false, true, true]);
  });

  test("a forgotten task's attempt key can be used again", async () => {
    let now = 0;
    const table = new DirectTaskTable({ now: () => now, keepFinishedMs: 10 });
    const runner = manualRunner();
    const first = table.start(request, runner, "key");
    runner.finish();
    await first.done;
    now = 11;
    expect(table.start(request, runner, "key")).not.toBe(first);
  });
});

describe("TaskOutputLog", () => {
  test("offsets count UTF-8 bytes and a page joins neighbouring chunks of one stream", () => {
    const log = new TaskOutputLog(1024);
    log.append("stdout", "é");
    log.append("stdout", "x\n");
    log.append("stderr", "€\n");
    expect(log.size).toBe(2 + 2 + 4);
    expect(log.read(0, 1024)).toEqual({
      output: [
        { stream: "stdout", data: "éx\n" },
        { stream: "stderr", data: "€\n" },
      ],
      offset: 8,
      more: false,
      droppedBytes: 0,
    });
    expect(log.read(4, 1024).output).toEqual([{ stream: "stderr", data: "€\n" }]);
  });

  test("an offset inside a character starts at the next character", () => {
    const log = new TaskOutputLog(1024);
    log.append("stdout", "aé b");
    expect(log.read(2, 1024)).toMatchObject({ output: [{ stream: "stdout", data: " b" }], offset: 5 });
  });

  test("a page stops near its size and says that more follows", () => {
    const log = new TaskOutputLog(1024);
    for (const line of ["aaaa", "bbbb", "cccc"]) log.append("stdout", line);
    expect(log.read(0, 8)).toMatchObject({ output: [{ data: "aaaabbbb" }], offset: 8, more: true });
    expect(log.read(8, 8)).toMatchObject({ output: [{ data: "cccc" }], offset: 12, more: false });
    // A chunk larger than a page still comes whole.
    expect(log.read(0, 2)).toMatchObject({ output: [{ data: "aaaa" }], offset: 4, more: true });
  });

  test("only the newest bytes are kept; reading from a dropped offset reports what was lost", () => {
    const log = new TaskOutputLog(8);
    for (const line of ["1111", "2222", "3333"]) log.append("stdout", line);
    expect(log.size).toBe(12);
    expect(log.read(0, 1024)).toEqual({
      output: [{ stream: "stdout", data: "22223333" }],
      offset: 12,
      more: false,
      droppedBytes: 4,
    });
    expect(log.read(6, 1024)).toMatchObject({ output: [{ data: "223333" }], droppedBytes: 0 });
  });

  test("reading past the end is refused", () => {
    const log = new TaskOutputLog(8);
    log.append("stdout", "ab");
    expect(() => log.read(3, 8)).toThrow("offset 3 is past the end of the output (2 bytes)");
  });
});
