import { type ChildProcessByStdio, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createServer } from "node:net";
import type { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { StepAttemptRequestInput } from "../src/core/step-attempt.js";
import { StepAttemptRequest } from "../src/core/step-attempt.js";
import { version } from "../src/core/version.js";
import { DirectStepRunner } from "../src/direct/client.js";
import { cliPath, processesWith, repoRoot, runCli } from "./helpers/cli.js";

const token = "runner-token-for-tests";

/** A port nobody listens on right now. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}

interface AgentServerProcess {
  url: string;
  child: ChildProcessByStdio<null, Readable, Readable>;
  output: { stdout: string; stderr: string };
  /** Sends `signal` and resolves with the exit code. */
  stop: (signal?: NodeJS.Signals) => Promise<number | null>;
}

/** Starts the built `runyard agent-server` and resolves once it says it listens. */
async function startAgentServer(
  args: { addr?: string; token?: string } = {},
  env: Record<string, string> = {},
): Promise<AgentServerProcess> {
  const port = await freePort();
  const addr = args.addr ?? `127.0.0.1:${port}`;
  const flags = [
    "agent-server",
    "--addr",
    addr,
    ...(args.token === undefined ? [] : ["--token", args.token]),
  ];
  const child = spawn(process.execPath, [cliPath, ...flags], {
    cwd: repoRoot,
    env: { ...process.env, NO_COLOR: "1", RUNYARD_TOKEN: "", ADOS_TOKEN: "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const output = { stdout: "", stderr: "" };
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    output.stderr += chunk;
  });
  const url = `http://127.0.0.1:${addr.split(":").at(-1)}`;
  await new Promise<void>((resolve, reject) => {
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      output.stdout += chunk;
      if (output.stdout.includes(`agent-server listening on ${url}\n`)) resolve();
    });
    void exited.then((code) => reject(new Error(`agent-server exited ${code}: ${output.stderr}`)));
  });
  return {
    url,
    child,
    output,
    stop: (signal = "SIGTERM") => {
      child.kill(signal);
      return exited;
    },
  };
}

function attemptBody(overrides: Partial<StepAttemptRequestInput> = {}): StepAttemptRequestInput {
  return {
    run_id: `run-${randomBytes(4).toString("hex")}`,
    step: "build",
    host: "local",
    attempt: 1,
    action: "shell.run",
    script: "echo hello",
    env: {},
    ...overrides,
  };
}

function uniqueMarker(): string {
  return `runyard-agent-test-${process.pid}-${randomBytes(6).toString("hex")}`;
}

/** A step whose process carries `marker` in its command line until it is killed. */
function markedSleep(marker: string): string {
  return `exec -a ${marker} sleep 300`;
}

/** Any agent-server answer, loosely: tests look at the fields a route sends. */
interface Answer {
  task_id: string;
  state: "running" | "canceling" | "done";
  output: { stream: string; data: string }[];
  offset: number;
  text: string;
  result?: { status: string; exit_code: number | null };
  error: { code: string; message: string; hint: string };
}

async function json(response: Response | Promise<Response>): Promise<Answer> {
  return (await (await response).json()) as Answer;
}

describe.concurrent("runyard agent-server over HTTP", () => {
  let server: AgentServerProcess;
  const api = (path: string, init: RequestInit = {}, secret = token): Promise<Response> =>
    fetch(`${server.url}${path}`, {
      ...init,
      headers: {
        authorization: `Bearer ${secret}`,
        ...(init.body ? { "content-type": "application/json" } : {}),
      },
    });
  const run = (body: StepAttemptRequestInput): Promise<Response> =>
    api("/run", { method: "POST", body: JSON.stringify(body) });

  /** Follows a task with long-polls from offset 0 until it is done; returns every answer. */
  async function followTask(taskId: string): Promise<Answer[]> {
    const answers: Answer[] = [];
    let offset = 0;
    for (;;) {
      const answer = await json(api(`/status?task_id=${taskId}&offset=${offset}&wait_ms=10000`));
      answers.push(answer);
      offset = answer.offset;
      if (answer.state === "done") return answers;
    }
  }

  beforeAll(async () => {
    server = await startAgentServer({ token });
  });

  afterAll(async () => {
    // Once seen hanging past the hook's 60 s on a loaded machine: say what the process printed.
    let timer: NodeJS.Timeout | undefined;
    const code = await Promise.race([
      server.stop(),
      new Promise<"hung">((resolve) => {
        timer = setTimeout(() => resolve("hung"), 45_000);
      }),
    ]);
    clearTimeout(timer);
    if (code === "hung") {
      server.child.kill("SIGKILL");
      throw new Error(
        `agent-server still ran 45 s after SIGTERM; stdout: ${server.output.stdout}\nstderr: ${server.output.stderr}`,
      );
    }
    expect(code).toBe(0);
    expect(server.output.stderr).toContain("agent-server stopped\n");
  }, 60_000);

  test("/heartbeat answers 200 to the right token and 401 to a wrong one or none", async ({ expect }) => {
    const right = await api("/heartbeat");
    expect(right.status).toBe(200);
    expect(await json(right)).toMatchObject({
      ok: true,
      tasks_running: expect.any(Number),
      version,
    });

    const wrong = await api("/heartbeat", {}, "not-the-token");
    expect(wrong.status).toBe(401);
    const { error } = await json(wrong);
    expect(error.code).toBe("UNAUTHORIZED");
    expect(error.hint).toContain("--token");

    const none = await fetch(`${server.url}/heartbeat`);
    expect(none.status).toBe(401);
    expect((await fetch(`${server.url}/health`)).status).toBe(200);
  });

  test("a quick step is answered 200 with its result and output", async ({ expect }) => {
    const response = await run(
      attemptBody({ script: "echo hello; echo BOPS_EXPORT:OK=yes", export_vars: true }),
    );
    expect(response.status).toBe(200);
    expect(await json(response)).toMatchObject({
      state: "done",
      output: [{ stream: "stdout", data: "hello\nBOPS_EXPORT:OK=yes\n" }],
      result: { status: "success", exit_code: 0, exports: { OK: "yes" } },
    });
  });

  test("a step of 5 s is answered 202 at 4 s; /status then gives start, then end, each once", async ({
    expect,
  }) => {
    const started = performance.now();
    const response = await run(attemptBody({ script: "echo start; sleep 4.5; echo end" }));
    const waited = performance.now() - started;
    expect(response.status).toBe(202);
    expect(waited).toBeGreaterThanOrEqual(3900);
    const { task_id: taskId, state } = await json(response);
    expect(state).toBe("running");

    const answers = await followTask(taskId);
    expect(answers.map((answer) => answer.text).filter(Boolean)).toEqual(["start\n", "end\n"]);
    expect(answers.at(-1)).toMatchObject({
      state: "done",
      offset: 10,
      result: { status: "success", exit_code: 0 },
    });
  });

  test("/cancel stops a long step: the task ends canceled and its processes are gone", async ({ expect }) => {
    const marker = uniqueMarker();
    const response = await run(attemptBody({ action: "cmd.run", script: markedSleep(marker) }));
    expect(response.status).toBe(202);
    expect(processesWith(marker)).not.toEqual([]);
    const { task_id: taskId } = await json(response);

    const cancel = await api(`/cancel?task_id=${taskId}`, { method: "POST" });
    expect(await json(cancel)).toEqual({ task_id: taskId, state: "canceling" });
    const answers = await followTask(taskId);
    expect(answers.at(-1)?.result?.status).toBe("canceled");
    expect(processesWith(marker)).toEqual([]);
  });

  test("/status and /cancel of an unknown task are 404", async ({ expect }) => {
    expect((await api("/status?task_id=task_unknown")).status).toBe(404);
    expect((await api("/cancel?task_id=task_unknown", { method: "POST" })).status).toBe(404);
  });

  test("/run-status is 404 for an unknown run and a snapshot after a run", async ({ expect }) => {
    const unknown = await api("/run-status?run_id=run-never");
    expect(unknown.status).toBe(404);
    expect((await json(unknown)).error.code).toBe("NOT_FOUND");

    const body = attemptBody({ script: "exit 3" });
    const done = await json(run(body));
    const snapshot = await json(api(`/run-status?run_id=${body.run_id}`));
    expect(snapshot).toEqual({
      run_id: body.run_id,
      status: "failed",
      steps: [
        {
          step: "build",
          host: "local",
          attempt: 1,
          task_id: done.task_id,
          state: "done",
          status: "failed",
          exit_code: 3,
        },
      ],
      updated_at: expect.any(String),
    });
  });

  test("an invalid step attempt is refused with 400 naming the field", async ({ expect }) => {
    const response = await run({ ...attemptBody(), action: "ssh.run" as "cmd.run" });
    expect(response.status).toBe(400);
    const { error } = await json(response);
    expect(error.code).toBe("INVALID_INPUT");
    expect(error.message).toContain("action:");
  });

  test("a step that prints the agent-server's token shows it masked", async ({ expect }) => {
    const response = await run(attemptBody({ script: 'echo "token is $VALUE"', env: { VALUE: token } }));
    expect((await json(response)).output).toEqual([{ stream: "stdout", data: "token is ***\n" }]);
  });

  describe("DirectStepRunner", () => {
    const client = (): DirectStepRunner => new DirectStepRunner({ address: server.url, token });

    function collect(): {
      entries: { stream: string; data: string }[];
      onOutput: (s: "stdout" | "stderr", d: string) => void;
    } {
      const entries: { stream: string; data: string }[] = [];
      return { entries, onOutput: (stream, data) => entries.push({ stream, data }) };
    }

    test("a quick attempt delivers its output once and in order", async ({ expect }) => {
      const { entries, onOutput } = collect();
      const request = StepAttemptRequest.parse(
        attemptBody({ script: "for i in 1 2 3; do echo line$i; done" }),
      );
      const result = await client().runAttempt(request, { onOutput, signal: new AbortController().signal });
      expect(result).toMatchObject({ status: "success", exit_code: 0 });
      expect(entries.map((entry) => entry.data).join("")).toBe("line1\nline2\nline3\n");
    });

    test("a long attempt delivers its output as it comes, once and in order", async ({ expect }) => {
      const { entries, onOutput } = collect();
      const request = StepAttemptRequest.parse(attemptBody({ script: "echo start; sleep 4.5; echo end" }));
      const result = await client().runAttempt(request, { onOutput, signal: new AbortController().signal });
      expect(result).toMatchObject({ status: "success", exit_code: 0 });
      expect(entries).toEqual([
        { stream: "stdout", data: "start\n" },
        { stream: "stdout", data: "end\n" },
      ]);
    });

    test("aborting while /run waits cancels the attempt on the agent-server", async ({ expect }) => {
      const marker = uniqueMarker();
      const controller = new AbortController();
      const request = StepAttemptRequest.parse(
        attemptBody({ action: "cmd.run", script: markedSleep(marker) }),
      );
      const attempt = client().runAttempt(request, { onOutput: () => {}, signal: controller.signal });
      await until(() => processesWith(marker).length > 0);
      const abortedAt = performance.now();
      controller.abort();
      expect((await attempt).status).toBe("canceled");
      // At once, not when the agent-server's 4 s sync wait would have answered.
      expect(performance.now() - abortedAt).toBeLessThan(2000);
      expect(processesWith(marker)).toEqual([]);
    });

    test("aborting while /status is polled cancels the attempt on the agent-server", async ({ expect }) => {
      const marker = uniqueMarker();
      const controller = new AbortController();
      const request = StepAttemptRequest.parse(
        attemptBody({ script: `sleep 4.5; echo polling; ${markedSleep(marker)}` }),
      );
      const { entries } = collect();
      const attempt = client().runAttempt(request, {
        onOutput: (stream, data) => {
          entries.push({ stream, data });
          if (data.includes("polling")) controller.abort();
        },
        signal: controller.signal,
      });
      const result = await attempt;
      expect(entries).toEqual([{ stream: "stdout", data: "polling\n" }]);
      expect(result.status).toBe("canceled");
      expect(processesWith(marker)).toEqual([]);
    });

    test("a wrong token ends the attempt UNAUTHORIZED without showing any token", async ({ expect }) => {
      const runner = new DirectStepRunner({ address: server.url, token: "wrong-token-value" });
      const request = StepAttemptRequest.parse(attemptBody());
      const result = await runner.runAttempt(request, {
        onOutput: () => {},
        signal: new AbortController().signal,
      });
      expect(result.status).toBe("failed");
      expect(result.error).toMatchObject({
        code: "UNAUTHORIZED",
        message: `agent-server ${server.url} refused the token`,
      });
      expect(result.error?.hint).toContain("--token");
      expect(JSON.stringify(result)).not.toMatch(/wrong-token-value|runner-token-for-tests/);
    });
  });
});

describe.concurrent("runyard agent-server start and stop", () => {
  test("a closed port ends the attempt HOST_UNREACHABLE", async ({ expect }) => {
    const address = `http://127.0.0.1:${await freePort()}`;
    const runner = new DirectStepRunner({ address, token, retryForMs: 1000 });
    const request = StepAttemptRequest.parse(attemptBody());
    const result = await runner.runAttempt(request, {
      onOutput: () => {},
      signal: new AbortController().signal,
    });
    expect(result).toMatchObject({
      status: "failed",
      exit_code: null,
      error: { code: "HOST_UNREACHABLE", message: `cannot reach agent-server ${address}: ECONNREFUSED` },
    });
    expect(JSON.stringify(result)).not.toContain(token);
  });

  test("without a token it refuses to start, with exit 2 and a hint", async ({ expect }) => {
    const result = await runCli(["agent-server", "--addr", "127.0.0.1:0"], {
      env: { RUNYARD_TOKEN: "", ADOS_TOKEN: "" },
    });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("error: agent-server needs a token");
    expect(result.stderr).toContain("hint: start it with --token");
  });

  test("an --addr that is not [host:]port is refused with exit 2", async ({ expect }) => {
    const result = await runCli(["agent-server", "--addr", "http://x", "--token", token]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--addr "http://x" is not an address to listen on');
  });

  test("a bare :port binds 127.0.0.1, takes RUNYARD_TOKEN, and keeps that token from steps", async ({
    expect,
  }) => {
    const port = await freePort();
    const server = await startAgentServer({ addr: `:${port}` }, { RUNYARD_TOKEN: token });
    try {
      await until(() => server.output.stdout.includes("binds"));
      expect(server.output.stdout).toContain(`--addr :${port} binds 127.0.0.1`);
      expect(server.output.stdout).toContain(`--addr 0.0.0.0:${port}`);
      const response = await fetch(`${server.url}/run`, {
        method: "POST",
        headers: { "x-runyard-token": token, "content-type": "application/json" },
        body: JSON.stringify(attemptBody({ script: "printenv RUNYARD_TOKEN || echo unset" })),
      });
      expect((await json(response)).output).toEqual([{ stream: "stdout", data: "unset\n" }]);
    } finally {
      expect(await server.stop()).toBe(0);
    }
  });

  test("SIGTERM cancels the running steps, answers their callers, and exits 0", async ({ expect }) => {
    const server = await startAgentServer({ token });
    const marker = uniqueMarker();
    const pending = fetch(`${server.url}/run`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify(attemptBody({ action: "cmd.run", script: markedSleep(marker) })),
    });
    await until(() => processesWith(marker).length > 0);
    expect(await server.stop("SIGTERM")).toBe(0);
    expect(processesWith(marker)).toEqual([]);
    expect(await json(pending)).toMatchObject({ state: "done", result: { status: "canceled" } });
    expect(server.output.stderr).toContain("agent-server stopping");
  });
});

/** Waits for a condition of the outside world (a process appearing), checking every 20 ms. */
async function until(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const giveUpAt = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > giveUpAt) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
