import { createHash, timingSafeEqual } from "node:crypto";
import Fastify, { type FastifyInstance, type FastifyReply } from "fastify";
import { z } from "zod";
import { type ErrorCode, errorTable, RunyardError } from "../core/errors.js";
import { type Logger, silentLogger } from "../core/logger.js";
import { StepAttemptRequest, type StepRunner } from "../core/step-attempt.js";
import { version } from "../core/version.js";
import { createExecutor } from "../exec/create-executor.js";
import { LocalStepRunner } from "../exec/local-runner.js";
import type { Executor } from "../exec/types.js";
import { ATTEMPT_KEY_HEADER, type CancelAnswer, MAX_STATUS_WAIT_MS, type TaskAnswer } from "./api.js";
import {
  type DirectTask,
  DirectTaskTable,
  type DirectTaskTableOptions,
  runSnapshot,
  settled,
} from "./tasks.js";

export interface DirectServerOptions {
  /** Every caller but `/health` must send it (`Authorization: Bearer` or `X-Runyard-Token`). */
  token: string;
  /** How long `/run` waits for the attempt to end before a 202 with a task id (the API's wait: 4 s). */
  syncWaitMs?: number;
  /** The agent-server's own environment, under each step's env. */
  baseEnv: Record<string, string>;
  /** Time between SIGTERM and SIGKILL when a step is stopped. */
  killGraceMs: number;
  logger?: Logger;
  /** Where the attempts run; this machine's process groups by default. */
  runner?: StepRunner;
  /** How long finished tasks are remembered. */
  tasks?: DirectTaskTableOptions;
}

/** How long answers in flight at a stop get before their connections are closed. */
const CLOSE_GRACE_MS = 3000;

/** A `/status` answer carries at most about this much output; the client asks again for more. */
const PAGE_BYTES = 1024 * 1024;

const routesHint =
  "agent-server routes: POST /run, GET /status, POST /cancel, GET /heartbeat, GET /run-status, GET /health.";

const StatusQuery = z.object({
  task_id: z.string().min(1),
  offset: z.coerce.number().int().nonnegative().default(0),
  wait_ms: z.coerce
    .number()
    .int()
    .nonnegative()
    .default(0)
    .transform((ms) => Math.min(ms, MAX_STATUS_WAIT_MS)),
});

const CancelQuery = z
  .object({ task_id: z.string().min(1).optional(), key: z.string().min(1).max(200).optional() })
  .refine((query) => query.task_id !== undefined || query.key !== undefined, {
    message: "task_id is required",
    path: ["task_id"],
  });

const RunStatusQuery = z.object({ run_id: z.string().min(1) });

/** The agent-server's own executor, closed with it, when no runner is given. */
function localStepRunner(options: DirectServerOptions): { runner: StepRunner; executor: Executor } {
  const executor = createExecutor({ baseEnv: options.baseEnv, killGraceMs: options.killGraceMs });
  const runner = new LocalStepRunner(executor, {
    killGraceMs: options.killGraceMs,
    maskValues: [options.token],
  });
  return { runner, executor };
}

/**
 * `runyard agent-server`: runs step attempts sent over HTTP (direct dispatch). A `/run` ending within
 * `syncWaitMs` answers its result; a longer one becomes a task followed by `/status` long-polls from a byte
 * offset and stopped by `/cancel`.
 */
export function createDirectServer(options: DirectServerOptions): FastifyInstance {
  const logger = options.logger ?? silentLogger;
  const syncWaitMs = options.syncWaitMs ?? 4000;
  const { runner, executor } = options.runner
    ? { runner: options.runner, executor: undefined }
    : localStepRunner(options);
  const tasks = new DirectTaskTable(options.tasks);
  const tokenMatches = tokenChecker(options.token);
  const app = Fastify({ logger: false, bodyLimit: 16 * 1024 * 1024 });

  app.addHook("onRequest", async (request, reply) => {
    if (request.routeOptions.url === "/health") return;
    const presented = presentedToken(request.headers);
    if (presented !== undefined && tokenMatches(presented)) return;
    logger.warn(
      { ip: request.ip, path: request.url.split("?")[0] },
      "refused a request with a wrong or no token",
    );
    const message =
      presented === undefined
        ? "this agent-server needs a token"
        : "the token does not match this agent-server's token";
    return refuse(reply.header("www-authenticate", "Bearer"), "UNAUTHORIZED", message, {
      hint: "Send `Authorization: Bearer <token>` (or `X-Runyard-Token: <token>`) with the same value as the agent-server's --token; in a workflow, give the host that `token:`.",
    });
  });

  app.setNotFoundHandler((request, reply) =>
    refuse(reply, "NOT_FOUND", `no route ${request.method} ${request.url.split("?")[0]}`, {
      hint: routesHint,
    }),
  );

  app.setErrorHandler((error, _request, reply) => {
    if (error instanceof RunyardError) {
      return refuse(reply, error.code, error.message, { hint: error.hint, details: error.details });
    }
    const status = (error as { statusCode?: number }).statusCode ?? 500;
    if (status >= 400 && status < 500) {
      // fastify's own refusals: a body that is not JSON, too large, of another content type.
      return refuse(reply, "INVALID_INPUT", (error as Error).message, {
        status,
        hint: "Send the body as JSON with `Content-Type: application/json`.",
      });
    }
    logger.error({ err: error }, "agent-server request failed");
    return refuse(reply, "INTERNAL", "the agent-server failed to answer");
  });

  // A bounded stop: steps get their kill grace, then answers in flight CLOSE_GRACE_MS before their
  // connections close, so no long-poll or half-sent request holds the process (one under load ran on).
  app.addHook("preClose", async () => {
    const stepsEnded = await settled(tasks.cancelAll(), options.killGraceMs + CLOSE_GRACE_MS);
    if (!stepsEnded) {
      logger.warn(
        { tasks_running: tasks.running().length },
        "steps still running after their kill grace; stopping without them",
      );
    }
    void executor?.close();
    setTimeout(() => app.server.closeAllConnections(), CLOSE_GRACE_MS).unref();
  });

  app.get("/health", async () => ({ ok: true }));

  app.get("/heartbeat", async () => ({ ok: true, tasks_running: tasks.running().length, version }));

  app.post("/run", async (request, reply) => {
    const attempt = parseInput(StepAttemptRequest, request.body, "step attempt", {
      hint: "Send a JSON step attempt: run_id, step, host, attempt, action (cmd.run or shell.run), script, env.",
    });
    const key = attemptKey(request.headers[ATTEMPT_KEY_HEADER]);
    const known = key === undefined ? undefined : tasks.byKey(key);
    // The agent-server's own token is masked in what the step prints, like any secret.
    const task =
      known ?? tasks.start({ ...attempt, secrets: [...attempt.secrets, options.token] }, runner, key);
    if (!known) logTask(task, logger);
    if (await task.settledWithin(syncWaitMs)) return taskAnswer(task, 0);
    return reply.code(202).send({ task_id: task.id, state: "running" } satisfies Partial<TaskAnswer>);
  });

  app.get("/status", async (request, reply) => {
    const query = parseInput(StatusQuery, request.query, "status query");
    const task = knownTask(tasks, query.task_id);
    if (query.offset > task.log.size) {
      throw new RunyardError(
        "INVALID_INPUT",
        `offset ${query.offset} is past the end of the output (${task.log.size} bytes)`,
        { hint: "Ask from 0, or from the `offset` of the previous answer." },
      );
    }
    const clientGone = new AbortController();
    const onClose = (): void => clientGone.abort();
    reply.raw.once("close", onClose);
    try {
      await task.changedAfter(query.offset, query.wait_ms, clientGone.signal);
    } finally {
      reply.raw.off("close", onClose);
    }
    return taskAnswer(task, query.offset);
  });

  app.post("/cancel", async (request): Promise<CancelAnswer> => {
    const query = parseInput(CancelQuery, request.query, "cancel query");
    let task: DirectTask;
    if (query.task_id !== undefined) {
      task = knownTask(tasks, query.task_id);
      task.cancel();
    } else {
      task = tasks.cancelKey(query.key!);
    }
    logger.info({ task_id: task.id }, "cancel requested");
    return { task_id: task.id, state: task.state === "done" ? "done" : "canceling" };
  });

  app.get("/run-status", async (request) => {
    const query = parseInput(RunStatusQuery, request.query, "run-status query");
    const runTasks = tasks.forRun(query.run_id);
    if (runTasks.length === 0) {
      throw new RunyardError("NOT_FOUND", `no run ${JSON.stringify(query.run_id)} on this agent-server`, {
        hint: "An agent-server knows the runs whose steps it ran, until an hour after they end.",
      });
    }
    return runSnapshot(query.run_id, runTasks);
  });

  return app;
}

/** Compares in constant time; hashing first makes the lengths equal. */
function tokenChecker(token: string): (presented: string) => boolean {
  const expected = createHash("sha256").update(token).digest();
  return (presented) => timingSafeEqual(createHash("sha256").update(presented).digest(), expected);
}

function presentedToken(headers: Record<string, string | string[] | undefined>): string | undefined {
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(String(headers.authorization ?? ""));
  if (bearer) return bearer[1];
  const header = headers["x-runyard-token"];
  return typeof header === "string" && header !== "" ? header : undefined;
}

function attemptKey(header: string | string[] | undefined): string | undefined {
  if (typeof header !== "string" || header === "") return undefined;
  if (header.length > 200) {
    throw new RunyardError("INVALID_INPUT", `${ATTEMPT_KEY_HEADER} is longer than 200 characters`);
  }
  return header;
}

function knownTask(tasks: DirectTaskTable, id: string): DirectTask {
  const task = tasks.get(id);
  if (task) return task;
  throw new RunyardError("NOT_FOUND", `no task ${JSON.stringify(id)} on this agent-server`, {
    hint: "Task ids come from POST /run; finished tasks are forgotten after an hour.",
  });
}

/** The task's state and its output from `offset`; `text` joins the output for curl users. */
function taskAnswer(task: DirectTask, offset: number): TaskAnswer & { text: string } {
  const page = task.log.read(offset, PAGE_BYTES);
  return {
    task_id: task.id,
    state: task.state,
    output: page.output,
    offset: page.offset,
    more: page.more,
    ...(page.droppedBytes > 0 ? { dropped_bytes: page.droppedBytes } : {}),
    ...(task.result ? { result: task.result } : {}),
    text: page.output.map((entry) => entry.data).join(""),
  };
}

function logTask(task: DirectTask, logger: Logger): void {
  const { run_id, step, host, attempt } = task.request;
  const log = logger.child({ task_id: task.id, run_id, step, host, attempt });
  log.info("task started");
  void task.done.then((result) =>
    log.info(
      { status: result.status, exit_code: result.exit_code, duration_ms: result.duration_ms },
      "task ended",
    ),
  );
}

function parseInput<T extends z.ZodType>(
  schema: T,
  value: unknown,
  what: string,
  options: { hint?: string } = {},
): z.infer<T> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((issue) => ({
    path: issue.path.map(String).join(".") || "(body)",
    message: issue.message,
  }));
  const list = problems.map((problem) => `${problem.path}: ${problem.message}`).join("; ");
  throw new RunyardError("INVALID_INPUT", `invalid ${what}: ${list}`, { ...options, details: problems });
}

function refuse(
  reply: FastifyReply,
  code: ErrorCode,
  message: string,
  options: { hint?: string; details?: unknown; status?: number } = {},
): FastifyReply {
  const error = {
    code,
    message,
    hint: options.hint ?? errorTable[code].hint,
    ...(options.details !== undefined ? { details: options.details } : {}),
  };
  return reply.code(options.status ?? errorTable[code].status).send({ error });
}
