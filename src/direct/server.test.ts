import { once } from "node:events";
import { type AddressInfo, connect } from "node:net";
import type { FastifyInstance } from "fastify";
import { afterEach, describe, expect, test } from "vitest";
import type {
  StepAttemptRequest,
  StepAttemptRequestInput,
  StepAttemptResult,
  StepOutputSink,
  StepRunner,
} from "../core/step-attempt.js";
import { createDirectServer } from "./server.js";

const token = "agent-secret-token";
const auth = { authorization: `Bearer ${token}` };

interface ScriptedAttempt {
  request: StepAttemptRequest;
  onOutput: StepOutputSink;
  signal: AbortSignal;
  finish: (result?: Partial<StepAttemptResult>) => void;
}

/** A step runner the test drives: it prints and ends when told, and ends canceled when aborted. */
class ScriptedRunner implements StepRunner {
  readonly attempts: ScriptedAttempt[] = [];
  private waiting: { index: number; resolve: (attempt: ScriptedAttempt) => void }[] = [];

  runAttempt(
    request: StepAttemptRequest,
    io: { onOutput: StepOutputSink; signal: AbortSignal },
  ): Promise<StepAttemptResult> {
    return new Promise((resolve) => {
      const attempt: ScriptedAttempt = {
        request,
        ...io,
        finish: (result = {}) => resolve(stepResult(result)),
      };
      io.signal.addEventListener("abort", () =>
        attempt.finish({
          status: "canceled",
          exit_code: null,
          error: { code: "CANCELED", message: "canceled" },
        }),
      );
      const index = this.attempts.push(attempt) - 1;
      for (const waiter of this.waiting.filter((waiter) => waiter.index === index)) waiter.resolve(attempt);
      this.waiting = this.waiting.filter((waiter) => waiter.index !== index);
    });
  }

  /** The attempt number `index` (from 0), once the server has started it. */
  attempt(index: number): Promise<ScriptedAttempt> {
    const started = this.attempts[index];
    if (started) return Promise.resolve(started);
    return new Promise((resolve) => this.waiting.push({ index, resolve }));
  }
}

function stepResult(overrides: Partial<StepAttemptResult> = {}): StepAttemptResult {
  return {
    status: "success",
    exit_code: 0,
    exports: {},
    secret_exports: [],
    duration_ms: 5,
    memory_peak_bytes: 0,
    cpu_ms: 0,
    output_files: [],
    warnings: [],
    ...overrides,
  };
}

function attemptBody(overrides: Partial<StepAttemptRequestInput> = {}): StepAttemptRequestInput {
  return {
    run_id: "run-1",
    step: "build",
    host: "web",
    attempt: 1,
    action: "shell.run",
    script: "echo hello",
    env: {},
    ...overrides,
  };
}

let app: FastifyInstance | undefined;

function directServer(syncWaitMs = 2000): { app: FastifyInstance; runner: ScriptedRunner } {
  const runner = new ScriptedRunner();
  app = createDirectServer({ token, syncWaitMs, baseEnv: {}, killGraceMs: 100, runner });
  return { app, runner };
}

afterEach(async () => {
  await app?.close();
  app = undefined;
});

/** Starts a task that outlives the sync wait; resolves with its id and its scripted attempt. */
async function runningTask(
  server: FastifyInstance,
  runner: ScriptedRunner,
  body = attemptBody(),
): Promise<{ taskId: string; attempt: ScriptedAttempt }> {
  const index = runner.attempts.length;
  const response = await server.inject({ method: "POST", url: "/run", headers: auth, payload: body });
  expect(response.statusCode).toBe(202);
  return { taskId: response.json().task_id, attempt: await runner.attempt(index) };
}

describe("tokens", () => {
  test("/health answers without a token, for load balancers", async () => {
    const { app } = directServer();
    const response = await app.inject({ method: "GET", url: "/health" });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ ok: true });
  });

  test("/heartbeat answers the right token, sent as a bearer or as X-Runyard-Token", async () => {
    const { app } = directServer();
    for (const headers of [auth, { "x-runyard-token": token }]) {
      const response = await app.inject({ method: "GET", url: "/heartbeat", headers });
      expect(response.statusCode).toBe(200);
      expect(response.json()).toEqual({
        ok: true,
        tasks_running: 0,
        version: expect.stringMatching(/^\d+\.\d+/),
      });
    }
  });

  test("/heartbeat counts the running tasks", async () => {
    const { app, runner } = directServer(10);
    await runningTask(app, runner);
    const response = await app.inject({ method: "GET", url: "/heartbeat", headers: auth });
    expect(response.json().tasks_running).toBe(1);
  });

  test("a wrong token is refused with 401 and a hint to use the agent-server's --token", async () => {
    const { app } = directServer();
    const response = await app.inject({
      method: "GET",
      url: "/heartbeat",
      headers: { authorization: "Bearer not-the-token" },
    });
    expect(response.statusCode).toBe(401);
    const { error } = response.json();
    expect(error.code).toBe("UNAUTHORIZED");
    expect(error.message).toBe("the token does not match this agent-server's token");
    expect(error.hint).toContain("--token");
    expect(response.body).not.toContain(token);
  });

  test("a request without a token is refused with 401", async () => {
    const { app } = directServer();
    const response = await app.inject({ method: "GET", url: "/heartbeat" });
    expect(response.statusCode).toBe(401);
    expect(response.json().error).toMatchObject({
      code: "UNAUTHORIZED",
      message: "this agent-server needs a token",
    });
  });

  test("a /run with a wrong token runs nothing", async () => {
    const { app, runner } = directServer();
    const response = await app.inject({
      method: "POST",
      url: "/run",
      headers: { "x-runyard-token": "wrong" },
      payload: attemptBody(),
    });
    expect(response.statusCode).toBe(401);
    expect(runner.attempts).toHaveLength(0);
  });
});

describe("POST /run", () => {
  test("a step that ends within the sync wait is answered 200 with its result and output", async () => {
    const { app, runner } = directServer();
    const answer = app.inject({ method: "POST", url: "/run", headers: auth, payload: attemptBody() });
    const attempt = await runner.attempt(0);
    attempt.onOutput("stdout", "hello\n");
    attempt.onOutput("stderr", "careful\n");
    attempt.finish({ exports: { A: "1" } });
    const response = await answer;
    expect(response.statusCode).toBe(200);
    expect(response.json()).toMatchObject({
      task_id: expect.stringMatching(/^task_/),
      state: "done",
      output: [
        { stream: "stdout", data: "hello\n" },
        { stream: "stderr", data: "careful\n" },
      ],
      text: "hello\ncareful\n",
      offset: 14,
      result: { status: "success", exit_code: 0, exports: { A: "1" } },
    });
  });

  test("a step that outlives the sync wait is answered 202 with a task id", async () => {
    const { app, runner } = directServer(20);
    const response = await app.inject({ method: "POST", url: "/run", headers: auth, payload: attemptBody() });
    expect(response.statusCode).toBe(202);
    expect(response.json()).toEqual({ task_id: expect.stringMatching(/^task_/), state: "running" });
    expect(runner.attempts[0]?.request).toMatchObject({
      run_id: "run-1",
      step: "build",
      script: "echo hello",
    });
  });

  test("an invalid step attempt is refused with 400 naming each bad field", async () => {
    const { app, runner } = directServer();
    const response = await app.inject({
      method: "POST",
      url: "/run",
      headers: auth,
      payload: { ...attemptBody(), action: "ssh.run", attempt: 0, script: undefined },
    });
    expect(response.statusCode).toBe(400);
    const { error } = response.json();
    expect(error.code).toBe("INVALID_INPUT");
    expect(error.details.map((problem: { path: string }) => problem.path).sort()).toEqual([
      "action",
      "attempt",
      "script",
    ]);
    expect(error.message).toMatch(/^invalid step attempt: .*action: /);
    expect(runner.attempts).toHaveLength(0);
  });

  test("a body that is not JSON is refused with 400 INVALID_INPUT", async () => {
    const { app } = directServer();
    const response = await app.inject({
      method: "POST",
      url: "/run",
      headers: { ...auth, "content-type": "application/json" },
      payload: "{not json",
    });
    expect(response.statusCode).toBe(400);
    expect(response.json().error.code).toBe("INVALID_INPUT");
  });

  test("a /run sent again with the same attempt key returns the first task instead of running twice", async () => {
    const { app, runner } = directServer(20);
    const headers = { ...auth, "x-runyard-attempt-key": "key-1" };
    const first = await app.inject({ method: "POST", url: "/run", headers, payload: attemptBody() });
    const again = await app.inject({ method: "POST", url: "/run", headers, payload: attemptBody() });
    expect(again.json().task_id).toBe(first.json().task_id);
    expect(runner.attempts).toHaveLength(1);
  });

  test("the step's output is masked with the agent-server's token among its secrets", async () => {
    const { app, runner } = directServer();
    const answer = app.inject({
      method: "POST",
      url: "/run",
      headers: auth,
      payload: attemptBody({ secrets: ["mine-secret"] }),
    });
    const attempt = await runner.attempt(0);
    expect(attempt.request.secrets).toEqual(["mine-secret", token]);
    attempt.finish();
    await answer;
  });
});

describe("GET /status", () => {
  test("output comes in pages by UTF-8 byte offset, never repeating a byte", async () => {
    const { app, runner } = directServer(10);
    const { taskId, attempt } = await runningTask(app, runner);
    attempt.onOutput("stdout", "héllo\n");
    const first = (await app.inject({ url: `/status?task_id=${taskId}&offset=0`, headers: auth })).json();
    expect(first).toMatchObject({ state: "running", text: "héllo\n", offset: 7 });
    expect(first.result).toBeUndefined();

    attempt.onOutput("stderr", "oops\n");
    attempt.finish({ status: "failed", exit_code: 3 });
    const second = (await app.inject({ url: `/status?task_id=${taskId}&offset=7`, headers: auth })).json();
    expect(second).toMatchObject({
      state: "done",
      output: [{ stream: "stderr", data: "oops\n" }],
      offset: 12,
      more: false,
      result: { status: "failed", exit_code: 3 },
    });
  });

  test("a long-poll answers as soon as new output arrives", async () => {
    const { app, runner } = directServer(10);
    const { taskId, attempt } = await runningTask(app, runner);
    const poll = app.inject({ url: `/status?task_id=${taskId}&offset=0&wait_ms=30000`, headers: auth });
    attempt.onOutput("stdout", "tick\n");
    const answer = (await poll).json();
    expect(answer).toMatchObject({ state: "running", text: "tick\n", offset: 5 });
  });

  test("a long-poll answers when the task ends", async () => {
    const { app, runner } = directServer(10);
    const { taskId, attempt } = await runningTask(app, runner);
    const poll = app.inject({ url: `/status?task_id=${taskId}&offset=0&wait_ms=30000`, headers: auth });
    attempt.finish();
    expect((await poll).json()).toMatchObject({ state: "done", output: [], result: { status: "success" } });
  });

  test("a long-poll with nothing new answers after wait_ms, at the same offset", async () => {
    const { app, runner } = directServer(10);
    const { taskId, attempt } = await runningTask(app, runner);
    attempt.onOutput("stdout", "once\n");
    const started = performance.now();
    const answer = (
      await app.inject({ url: `/status?task_id=${taskId}&offset=5&wait_ms=100`, headers: auth })
    ).json();
    expect(performance.now() - started).toBeGreaterThanOrEqual(90);
    expect(answer).toMatchObject({ state: "running", output: [], offset: 5, text: "" });
  });

  test("an unknown task is 404 NOT_FOUND", async () => {
    const { app } = directServer();
    const response = await app.inject({ url: "/status?task_id=task_nope", headers: auth });
    expect(response.statusCode).toBe(404);
    expect(response.json().error).toMatchObject({
      code: "NOT_FOUND",
      message: 'no task "task_nope" on this agent-server',
    });
  });

  test("a missing task_id or an offset past the end is refused with 400", async () => {
    const { app, runner } = directServer(10);
    const missing = await app.inject({ url: "/status", headers: auth });
    expect(missing.statusCode).toBe(400);
    expect(missing.json().error.details).toEqual([{ path: "task_id", message: expect.any(String) }]);

    const { taskId } = await runningTask(app, runner);
    const past = await app.inject({ url: `/status?task_id=${taskId}&offset=10`, headers: auth });
    expect(past.statusCode).toBe(400);
    expect(past.json().error.message).toBe("offset 10 is past the end of the output (0 bytes)");
  });
});

describe("POST /cancel", () => {
  test("canceling a running task aborts its attempt; the task ends canceled", async () => {
    const { app, runner } = directServer(10);
    const { taskId, attempt } = await runningTask(app, runner);
    const response = await app.inject({ method: "POST", url: `/cancel?task_id=${taskId}`, headers: auth });
    expect(response.json()).toEqual({ task_id: taskId, state: "canceling" });
    expect(attempt.signal.aborted).toBe(true);
    const status = (
      await app.inject({ url: `/status?task_id=${taskId}&wait_ms=5000`, headers: auth })
    ).json();
    expect(status).toMatchObject({ state: "done", result: { status: "canceled" } });
  });

  test("canceling a finished task answers done", async () => {
    const { app, runner } = directServer(10);
    const { taskId, attempt } = await runningTask(app, runner);
    attempt.finish();
    await app.inject({ url: `/status?task_id=${taskId}&wait_ms=5000`, headers: auth });
    const response = await app.inject({ method: "POST", url: `/cancel?task_id=${taskId}`, headers: auth });
    expect(response.json()).toEqual({ task_id: taskId, state: "done" });
  });

  test("canceling an unknown task is 404", async () => {
    const { app } = directServer();
    const response = await app.inject({ method: "POST", url: "/cancel?task_id=task_nope", headers: auth });
    expect(response.statusCode).toBe(404);
    expect(response.json().error.code).toBe("NOT_FOUND");
  });

  test("canceling by attempt key before its /run arrives makes that /run end canceled without running", async () => {
    const { app, runner } = directServer();
    const cancel = await app.inject({ method: "POST", url: "/cancel?key=key-7", headers: auth });
    expect(cancel.json()).toMatchObject({ state: "done" });
    const run = await app.inject({
      method: "POST",
      url: "/run",
      headers: { ...auth, "x-runyard-attempt-key": "key-7" },
      payload: attemptBody(),
    });
    expect(run.statusCode).toBe(200);
    expect(run.json()).toMatchObject({ task_id: cancel.json().task_id, result: { status: "canceled" } });
    expect(runner.attempts).toHaveLength(0);
  });

  test("closing the agent-server cancels its running tasks", async () => {
    const { app, runner } = directServer(10);
    const { attempt } = await runningTask(app, runner);
    await app.close();
    expect(attempt.signal.aborted).toBe(true);
  });

  test("a stop ends though a step ignores its cancel and a client is halfway through a request", async () => {
    const ignoresCancel: StepRunner = { runAttempt: () => new Promise<StepAttemptResult>(() => {}) };
    app = createDirectServer({ token, syncWaitMs: 10, baseEnv: {}, killGraceMs: 100, runner: ignoresCancel });
    await app.listen({ host: "127.0.0.1", port: 0 });
    const run = await app.inject({ method: "POST", url: "/run", headers: auth, payload: attemptBody() });
    expect(run.statusCode).toBe(202);
    const { port } = app.server.address() as AddressInfo;
    const halfSent = connect(port, "127.0.0.1");
    await once(halfSent, "connect");
    halfSent.write(`GET /heartbeat HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer ${token}\r\n`);
    const socketClosed = once(halfSent, "close");
    await app.close();
    await socketClosed;
    app = undefined;
  });
});

describe("GET /run-status", () => {
  test("an unknown run is 404 NOT_FOUND", async () => {
    const { app } = directServer();
    const response = await app.inject({ url: "/run-status?run_id=run-unknown", headers: auth });
    expect(response.statusCode).toBe(404);
    expect(response.json().error).toMatchObject({
      code: "NOT_FOUND",
      message: 'no run "run-unknown" on this agent-server',
    });
  });

  test("a run is running while one of its tasks runs, then takes the worst ending of each step's last attempt", async () => {
    const { app, runner } = directServer(10);
    const web = await runningTask(app, runner, attemptBody({ host: "web" }));
    const db = await runningTask(app, runner, attemptBody({ host: "db" }));
    web.attempt.finish();
    db.attempt.finish({ status: "failed", exit_code: 2 });
    await app.inject({ url: `/status?task_id=${db.taskId}&wait_ms=5000`, headers: auth });
    const retry = await runningTask(app, runner, attemptBody({ host: "db", attempt: 2 }));

    const during = (await app.inject({ url: "/run-status?run_id=run-1", headers: auth })).json();
    expect(during.status).toBe("running");

    retry.attempt.finish();
    await app.inject({ url: `/status?task_id=${retry.taskId}&wait_ms=5000`, headers: auth });
    const after = (await app.inject({ url: "/run-status?run_id=run-1", headers: auth })).json();
    expect(after).toEqual({
      run_id: "run-1",
      status: "success",
      steps: [
        {
          step: "build",
          host: "web",
          attempt: 1,
          task_id: web.taskId,
          state: "done",
          status: "success",
          exit_code: 0,
        },
        {
          step: "build",
          host: "db",
          attempt: 1,
          task_id: db.taskId,
          state: "done",
          status: "failed",
          exit_code: 2,
        },
        {
          step: "build",
          host: "db",
          attempt: 2,
          task_id: retry.taskId,
          state: "done",
          status: "success",
          exit_code: 0,
        },
      ],
      updated_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
    });
  });

  test("a run whose last attempt failed is failed", async () => {
    const { app, runner } = directServer();
    const answer = app.inject({ method: "POST", url: "/run", headers: auth, payload: attemptBody() });
    (await runner.attempt(0)).finish({ status: "failed", exit_code: 1 });
    await answer;
    const snapshot = (await app.inject({ url: "/run-status?run_id=run-1", headers: auth })).json();
    expect(snapshot.status).toBe("failed");
  });
});

test("an unknown route is a 404 NOT_FOUND that lists the routes", async () => {
  const { app } = directServer();
  const response = await app.inject({ url: "/tasks", headers: auth });
  expect(response.statusCode).toBe(404);
  expect(response.json().error).toMatchObject({ code: "NOT_FOUND", message: "no route GET /tasks" });
  expect(response.json().error.hint).toContain("POST /run");
});
