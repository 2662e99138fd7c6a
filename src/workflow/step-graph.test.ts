/**
 * The engine's scheduling of graphs, matrices and rollbacks, with a step runner that does what
 * each step's script says, so that the tests decide when each step ends. Real processes run
 * the same workflows in test/workflow-graph.test.ts.
 */
import { setImmediate as tick } from "node:timers/promises";
import { describe, expect, test } from "vitest";
import { EventSequencer } from "../core/event-sequencer.js";
import type { RunEvent } from "../core/events.js";
import type { StepAttemptRequest, StepAttemptResult, StepRunner } from "../core/step-attempt.js";
import { type EngineOptions, runWorkflow } from "./engine.js";
import { formatDiagnostic } from "./model.js";
import { parseWorkflow } from "./parse.js";

type Ending = "ok" | "fail";

/**
 * Runs each attempt as its script says: `ok`, `fail`, `export NAME=value` (and succeed), or
 * `hold` (until the test calls `release`, or the run is canceled).
 */
class ScriptedRunner implements StepRunner {
  readonly started: string[] = [];
  readonly env = new Map<string, Record<string, string>>();
  readonly hosts: string[] = [];
  running = 0;
  mostAtOnce = 0;
  private readonly held = new Map<string, (ending: Ending) => void>();

  async runAttempt(request: StepAttemptRequest, io: { signal: AbortSignal }): Promise<StepAttemptResult> {
    this.started.push(request.step);
    this.hosts.push(`${request.step}@${request.host}`);
    this.env.set(request.step, request.env);
    this.running += 1;
    this.mostAtOnce = Math.max(this.mostAtOnce, this.running);
    try {
      const [verb, arg] = request.script.split(" ");
      // Every attempt yields once, so that steps that may overlap do.
      await tick();
      if (verb === "fail") return result("failed");
      if (verb === "export") {
        const [name = "", value = ""] = (arg ?? "").split("=");
        return result("success", { [name]: value });
      }
      if (verb === "hold") {
        const ending = await new Promise<Ending | "canceled">((resolve) => {
          if (io.signal.aborted) resolve("canceled");
          this.held.set(`${request.step}@${request.host}`, resolve);
          io.signal.addEventListener("abort", () => resolve("canceled"), { once: true });
        });
        return result(ending === "ok" ? "success" : ending === "fail" ? "failed" : "canceled");
      }
      return result("success");
    } finally {
      this.running -= 1;
    }
  }

  /** Ends a held step on a host, once it has started there. */
  async release(step: string, ending: Ending = "ok", host = "local"): Promise<void> {
    const key = `${step}@${host}`;
    await until(() => this.held.has(key));
    this.held.get(key)?.(ending);
    this.held.delete(key);
  }
}

function result(
  status: StepAttemptResult["status"],
  exports: Record<string, string> = {},
): StepAttemptResult {
  return {
    status,
    exit_code: status === "success" ? 0 : status === "failed" ? 1 : null,
    exports,
    duration_ms: 1,
    memory_peak_bytes: 0,
    cpu_ms: 0,
    output_files: [],
    secret_exports: [],
    warnings: [],
  };
}

/** Waits, a turn of the event loop at a time, until `done` holds. */
async function until(done: () => boolean): Promise<void> {
  for (let turns = 0; !done(); turns++) {
    if (turns > 10_000) throw new Error("the condition never came true");
    await tick();
  }
}

function start(yaml: string, runner: StepRunner, extra: Partial<EngineOptions> = {}) {
  const { workflow, diagnostics } = parseWorkflow(yaml, "wf.yaml");
  if (!workflow) throw new Error(diagnostics.map(formatDiagnostic).join("\n"));
  const events: RunEvent[] = [];
  const sequencer = new EventSequencer("run_1");
  const outcome = runWorkflow({
    workflow,
    runId: "run_1",
    emit: (input) => events.push(sequencer.next(input)),
    runnerFor: () => runner,
    ...extra,
  });
  return { events, outcome };
}

const step = (name: string, script: string, extra = "") =>
  `  - name: ${name}\n    action: cmd.run\n    args: {cmd: "${script}"}\n${extra}`;
const dependsOn = (...names: string[]) => `    depends: [${names.join(", ")}]\n`;

function finishedOf(events: RunEvent[], name: string) {
  return events.find((e) => e.type === "step.finished" && e.step === name);
}

describe("order", () => {
  test("without depends, steps run one at a time in file order", async () => {
    const runner = new ScriptedRunner();
    const { outcome } = start(
      `name: w\nsteps:\n${step("a", "ok")}${step("b", "ok")}${step("c", "ok")}`,
      runner,
    );
    expect((await outcome).status).toBe("success");
    expect(runner.started).toEqual(["a", "b", "c"]);
    expect(runner.mostAtOnce).toBe(1);
  });

  test("independent steps of a graph run at once, max_parallel at most, starting in file order", async () => {
    const runner = new ScriptedRunner();
    const steps = Array.from({ length: 10 }, (_, i) => step(`s${i}`, "ok", dependsOn())).join("");
    const { outcome } = start(`name: w\nmax_parallel: 3\nsteps:\n${steps}`, runner);
    expect((await outcome).status).toBe("success");
    expect(runner.mostAtOnce).toBe(3);
    expect(runner.started).toEqual(Array.from({ length: 10 }, (_, i) => `s${i}`));
  });

  test("max_parallel is 4 when the file does not say", async () => {
    const runner = new ScriptedRunner();
    const steps = Array.from({ length: 9 }, (_, i) => step(`s${i}`, "ok", dependsOn())).join("");
    await start(`name: w\nsteps:\n${steps}`, runner).outcome;
    expect(runner.mostAtOnce).toBe(4);
  });

  test("a step starts only once every step it depends on has ended", async () => {
    const runner = new ScriptedRunner();
    const { outcome } = start(
      `name: w\nsteps:\n${step("c", "ok", dependsOn("a", "b"))}${step("a", "hold")}${step("b", "hold")}`,
      runner,
    );
    await runner.release("a");
    await until(() => runner.started.includes("b"));
    expect(runner.started).toEqual(["a", "b"]);
    await runner.release("b");
    expect((await outcome).status).toBe("success");
    expect(runner.started).toEqual(["a", "b", "c"]);
  });
});

describe("exports in a graph", () => {
  test("reach the steps that depend on the exporter, directly or not, and no other", async () => {
    const runner = new ScriptedRunner();
    const { outcome } = start(
      `name: w
vars: {BASE: b}
steps:
${step("a", "export FROM_A=1")}${step("b", "ok", dependsOn("a"))}${step("c", "ok", dependsOn("b"))}${step("other", "ok", dependsOn())}`,
      runner,
    );
    const end = await outcome;
    expect(runner.env.get("b")).toMatchObject({ BASE: "b", FROM_A: "1" });
    expect(runner.env.get("c")).toMatchObject({ FROM_A: "1" });
    expect(runner.env.get("other")).toMatchObject({ BASE: "b" });
    expect(runner.env.get("other")).not.toHaveProperty("FROM_A");
    expect(end.vars).toMatchObject({ FROM_A: "1" });
  });

  test("a later step's export overrides the same name from a step it depends on", async () => {
    const runner = new ScriptedRunner();
    await start(
      `name: w\nsteps:\n${step("a", "export V=a")}${step("b", "export V=b", dependsOn("a"))}${step("c", "ok", dependsOn("a", "b"))}`,
      runner,
    ).outcome;
    expect(runner.env.get("c")).toMatchObject({ V: "b" });
  });

  test("two unrelated steps exporting one name differently fail the step that depends on both", async () => {
    const runner = new ScriptedRunner();
    const { events, outcome } = start(
      `name: w\nsteps:\n${step("a", "export V=a", dependsOn())}${step("b", "export V=b")}${step("c", "ok", dependsOn("a", "b"))}`,
      runner,
    );
    const end = await outcome;
    expect(runner.started).not.toContain("c");
    expect(end.status).toBe("failed");
    expect(end.error?.code).toBe("EXPORT_CONFLICT");
    expect(end.error?.message).toContain(
      'step "c": the steps it depends on, "a" and "b", exported different values for V',
    );
    expect(finishedOf(events, "c")).toMatchObject({ status: "failed", error: { code: "EXPORT_CONFLICT" } });
  });
});

describe("failures in a graph", () => {
  test("a failed dependency skips its dependents, saying which, while other branches go on", async () => {
    const runner = new ScriptedRunner();
    const { events, outcome } = start(
      `name: w\nsteps:\n${step("a", "fail", dependsOn())}${step("b", "ok", dependsOn("a"))}${step("c", "ok", dependsOn("b"))}${step("other", "ok")}`,
      runner,
    );
    const end = await outcome;
    expect(end.status).toBe("failed");
    expect(runner.started.sort()).toEqual(["a", "other"]);
    expect(finishedOf(events, "b")).toMatchObject({ status: "skipped", reason: 'dependency "a" failed' });
    expect(finishedOf(events, "c")).toMatchObject({
      status: "skipped",
      reason: 'dependency "b" did not run ("a" failed)',
    });
    expect(end.steps.map((s) => [s.name, s.status])).toEqual([
      ["a", "failed"],
      ["b", "skipped"],
      ["c", "skipped"],
      ["other", "success"],
    ]);
  });

  test("a dependency that failed with continue_on_error, or was skipped by when, counts as done", async () => {
    const runner = new ScriptedRunner();
    const { outcome } = start(
      `name: w\nsteps:\n${step("a", "fail", `${dependsOn()}    continue_on_error: true\n`)}${step("b", "ok", "    when: 1 == 2\n")}${step("c", "ok", dependsOn("a", "b"))}`,
      runner,
    );
    const end = await outcome;
    expect(end.status).toBe("success");
    expect(runner.started).toContain("c");
  });

  test("the run's error is the step that failed first", async () => {
    const runner = new ScriptedRunner();
    const { outcome } = start(
      `name: w\nsteps:\n${step("a", "hold", dependsOn())}${step("b", "hold")}`,
      runner,
    );
    await runner.release("b", "fail");
    await until(() => runner.running === 1);
    await runner.release("a", "fail");
    expect((await outcome).error?.message).toMatch(/^step "b" on local:/);
  });

  test("a canceled run cancels the running steps and starts no other", async () => {
    const runner = new ScriptedRunner();
    const controller = new AbortController();
    const { events, outcome } = start(
      `name: w\nsteps:\n${step("a", "hold", dependsOn())}${step("b", "ok", dependsOn("a"))}`,
      runner,
      { signal: controller.signal },
    );
    await until(() => runner.started.includes("a"));
    controller.abort();
    const end = await outcome;
    expect(end.status).toBe("canceled");
    expect(end.steps.map((s) => [s.name, s.status])).toEqual([
      ["a", "canceled"],
      ["b", "canceled"],
    ]);
    expect(events.some((e) => e.type === "step.started" && e.step === "b")).toBe(false);
  });
});

describe("matrix", () => {
  const matrix = (extra = "") => `    matrix: {NODE: ["18", "20"], OS: [a, b]}\n${extra}`;

  test("runs each combination with its variables, under its own name, max_parallel at most", async () => {
    const runner = new ScriptedRunner();
    const { outcome } = start(`name: w\nmax_parallel: 3\nsteps:\n${step("test", "ok", matrix())}`, runner);
    const end = await outcome;
    expect(end.steps.map((s) => s.name)).toEqual([
      "test (NODE=18, OS=a)",
      "test (NODE=18, OS=b)",
      "test (NODE=20, OS=a)",
      "test (NODE=20, OS=b)",
    ]);
    expect(runner.env.get("test (NODE=20, OS=a)")).toMatchObject({ NODE: "20", OS: "a" });
    expect(runner.mostAtOnce).toBe(3);
  });

  test("a step that depends on a matrix step waits for every combination", async () => {
    const runner = new ScriptedRunner();
    const { outcome } = start(
      `name: w\nsteps:\n${step("test", "hold", matrix())}${step("after", "ok", dependsOn("test"))}`,
      runner,
    );
    for (const name of ["test (NODE=18, OS=a)", "test (NODE=18, OS=b)", "test (NODE=20, OS=a)"]) {
      await runner.release(name);
    }
    await until(() => runner.started.includes("test (NODE=20, OS=b)"));
    expect(runner.started).not.toContain("after");
    await runner.release("test (NODE=20, OS=b)");
    expect((await outcome).status).toBe("success");
    expect(runner.started.at(-1)).toBe("after");
  });

  test("one failing combination fails the step after the others have finished", async () => {
    const runner = new ScriptedRunner();
    const { outcome } = start(`name: w\nmax_parallel: 2\nsteps:\n${step("test", "hold", matrix())}`, runner);
    await runner.release("test (NODE=18, OS=a)", "fail");
    for (const name of ["test (NODE=18, OS=b)", "test (NODE=20, OS=a)", "test (NODE=20, OS=b)"]) {
      await runner.release(name);
    }
    const end = await outcome;
    expect(end.status).toBe("failed");
    expect(end.error?.message).toMatch(/^step "test \(NODE=18, OS=a\)" on local:/);
    expect(end.steps.map((s) => s.status)).toEqual(["failed", "success", "success", "success"]);
  });

  test("fail_fast: true cancels the running combinations and those not started", async () => {
    const runner = new ScriptedRunner();
    const { events, outcome } = start(
      `name: w\nmax_parallel: 2\nsteps:\n${step("test", "hold", matrix("    fail_fast: true\n"))}`,
      runner,
    );
    await until(() => runner.started.length === 2);
    await runner.release("test (NODE=18, OS=a)", "fail");
    const end = await outcome;
    expect(end.steps.map((s) => s.status)).toEqual(["failed", "canceled", "canceled", "canceled"]);
    expect(runner.started).toHaveLength(2);
    expect(finishedOf(events, "test (NODE=20, OS=b)")).toMatchObject({
      status: "canceled",
      reason: 'fail_fast: "test (NODE=18, OS=a)" failed',
    });
    expect(end.status).toBe("failed");
  });
});

describe("rollback", () => {
  const undo = (script = "ok") => `    rollback: {action: cmd.run, args: {cmd: "${script}"}}\n`;

  test("a failed run rolls back the steps that succeeded, the last to end first", async () => {
    const runner = new ScriptedRunner();
    const { events, outcome } = start(
      `name: w
steps:
${step("a", "export V=1", undo())}${step("b", "ok")}${step("c", "ok", undo())}${step("d", "fail", undo())}`,
      runner,
    );
    const end = await outcome;
    expect(end.status).toBe("failed");
    expect(end.error?.message).toMatch(/^step "d"/);
    expect(runner.started).toEqual(["a", "b", "c", "d", "rollback: c", "rollback: a"]);
    expect(runner.env.get("rollback: a")).toMatchObject({ V: "1" });
    expect(end.rolledBack).toBe(true);
    expect(events.at(-1)).toMatchObject({ type: "run.finished", status: "failed", rolled_back: true });
  });

  test("in a graph, the order of ends decides, and a rollback runs where its step succeeded", async () => {
    const runner = new ScriptedRunner();
    const { outcome } = start(
      `name: w
inventory: {hosts: {h1: {}, h2: {}}}
steps:
${step("early", "hold", `${dependsOn()}    targets: [h1, h2]\n${undo()}`)}${step("late", "hold", `    targets: [h1]\n${undo()}`)}${step("boom", "fail", `${dependsOn("early", "late")}    targets: [h1]\n`)}`,
      runner,
    );
    await runner.release("late", "ok", "h1");
    await until(() => runner.running === 2);
    await runner.release("early", "ok", "h1");
    await runner.release("early", "ok", "h2");
    const end = await outcome;
    expect(end.status).toBe("failed");
    const rollbacks = runner.hosts.filter((h) => h.startsWith("rollback"));
    expect(rollbacks.sort()).toEqual(["rollback: early@h1", "rollback: early@h2", "rollback: late@h1"]);
    expect(runner.started.filter((s) => s.startsWith("rollback")).slice(0, 2)).toEqual([
      "rollback: early",
      "rollback: early",
    ]);
  });

  test("the first failing rollback stops the rest, and run.finished names it", async () => {
    const runner = new ScriptedRunner();
    const { events, outcome } = start(
      `name: w\nsteps:\n${step("a", "ok", undo())}${step("b", "ok", undo("fail"))}${step("c", "fail")}`,
      runner,
    );
    const end = await outcome;
    expect(runner.started).toEqual(["a", "b", "c", "rollback: b"]);
    expect(end.rollbackFailed).toBe("rollback: b");
    expect(events.at(-1)).toMatchObject({ type: "run.finished", rollback_failed: "rollback: b" });
    expect(end.steps.slice(-2).map((s) => [s.name, s.status])).toEqual([
      ["rollback: b", "failed"],
      ["rollback: a", "skipped"],
    ]);
  });

  test("rollback: false (--no-rollback), a successful run and a canceled run roll nothing back", async () => {
    const yaml = `name: w\nsteps:\n${step("a", "ok", undo())}${step("b", "hold")}`;
    const off = new ScriptedRunner();
    const skipped = start(yaml, off, { rollback: false });
    await off.release("b", "fail");
    expect((await skipped.outcome).rolledBack).toBeUndefined();
    expect(off.started).toEqual(["a", "b"]);

    const fine = new ScriptedRunner();
    const succeeded = start(yaml, fine);
    await fine.release("b");
    expect(fine.started).toEqual(["a", "b"]);
    expect((await succeeded.outcome).status).toBe("success");

    const controller = new AbortController();
    const stopped = new ScriptedRunner();
    const canceled = start(yaml, stopped, { signal: controller.signal });
    await until(() => stopped.started.includes("b"));
    controller.abort();
    expect((await canceled.outcome).status).toBe("canceled");
    expect(stopped.started).toEqual(["a", "b"]);
  });
});

describe("resume", () => {
  test("a graph resumed after a restart runs again only what had not finished, with the exports it had", async () => {
    const yaml = `name: w\nsteps:\n${step("a", "export V=1", dependsOn())}${step("b", "hold", dependsOn("a"))}${step("c", "ok", dependsOn("b"))}`;
    const first = new ScriptedRunner();
    const before = start(yaml, first);
    await until(() => first.started.includes("b"));
    // The server stops here: what it stored is the events so far.
    const stored = before.events.filter((e) => !(e.type === "step.started" && e.step === "b"));
    const second = new ScriptedRunner();
    const after = start(yaml, second, { resume: stored, announceStart: false });
    await second.release("b");
    const end = await after.outcome;
    expect(end.status).toBe("success");
    expect(second.started).toEqual(["b", "c"]);
    expect(second.env.get("b")).toMatchObject({ V: "1" });
    expect(end.steps.map((s) => s.status)).toEqual(["success", "success", "success"]);
    await first.release("b");
    await before.outcome;
  });
});
