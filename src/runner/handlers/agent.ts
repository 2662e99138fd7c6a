import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { namesOwnEndpoint } from "../../agents/model-endpoints.js";
import type { AgentOutput } from "../../agents/types.js";
import { agentRepoRefusal } from "../../core/agent-repo.js";
import { agentTaskConfinement } from "../../core/confinement.js";
import { RunyardError } from "../../core/errors.js";
import type { ErrorInfo, EventInput } from "../../core/events.js";
import {
  type AgentJob,
  type AgentJobResult,
  type AgentTask,
  type AgentTests,
  emptyAgentResult,
} from "../../core/jobs/agent.js";
import { SecretMasker, secretsFromEnv } from "../../core/masking.js";
import type { StepRunner } from "../../core/step-attempt.js";
import { allowedWorkFolder, realFolderRefusal, type WorkFolderRules } from "../../core/work-folders.js";
import { parseWorkflow } from "../../workflow/parse.js";
import { memberTestsRefusal, testsPlaybook } from "../../workflow/tests-playbook.js";
import type { AllocateRequest, Workspace } from "../../workspace/types.js";
import { copyTaskFiles } from "../copied-files.js";
import { errorOf, PipelineSteps } from "./agent-steps.js";
import { runAgentTests, type TestsOutcome } from "./agent-tests.js";
import { BoundedText, clipped } from "./bounded-text.js";
import { ConversationQueue } from "./conversation-queue.js";
import type { JobHandler, JobIo } from "./types.js";

/** How one supervised agent turn ended (see `src/runner/agent-turns.ts`). */
export interface TurnOutcome {
  status: "success" | "failed" | "canceled" | "timeout";
  error?: ErrorInfo;
  sessionId?: string;
  model?: string;
  inputTokens: number;
  outputTokens: number;
  costUsd?: number;
  finalText?: string;
  durationMs: number;
  memoryPeakBytes: number;
  cpuMs: number;
}

/** A turn that never ran: failed with `error` before its agent started. */
export function turnFailed(error: ErrorInfo): TurnOutcome {
  return {
    status: "failed",
    error,
    inputTokens: 0,
    outputTokens: 0,
    durationMs: 0,
    memoryPeakBytes: 0,
    cpuMs: 0,
  };
}

/** What a turn or a setup command is run with besides its task and cwd. */
export interface TurnIo {
  signal: AbortSignal;
  /** The task was submitted with an endpoint of its own (`*_BASE_URL`, `*_API_BASE`, ...): no runner credential goes to it. */
  ownEndpoint?: boolean;
  /** A task's own cwd, checked again as a sandbox holds it (`ExecExposure.cwdCheck`). */
  cwdCheck?: (realPath: string) => string | undefined;
}

/** Runs one turn of the task's agent in `cwd`, enforcing its timeout, stall limit and budget. */
export interface AgentTurns {
  run(task: AgentTask, cwd: string, io: TurnIo & { emit(output: AgentOutput): void }): Promise<TurnOutcome>;
  /** Throws when this runner will not run the task's turn as asked (its sandbox): before anything of it runs. */
  check?(task: AgentTask): void;
  /**
   * Runs the task's setup command in `cwd` as its turns run (their sandbox), each output line to
   * `say`; throws AGENT_SETUP_FAILED when it fails.
   */
  setup?(task: AgentTask, cwd: string, io: TurnIo & { say(line: string): void }): Promise<void>;
}

export interface AgentHandlerDeps {
  workspaces: { allocate(request: AllocateRequest): Promise<Workspace> };
  turns: AgentTurns;
  /** Stores an artifact of the job's run on the server; resolves with where it can be read. */
  upload(
    jobId: string,
    name: string,
    contentType: string,
    content: string,
  ): Promise<{ path: string; size: number }>;
  /** Runs the tests' steps on this machine. */
  stepRunner: StepRunner;
  /** Where tasks without a repo or cwd get a folder of their own (`<root>/chats/<key>`). */
  scratchRoot: string;
  /**
   * Where a task may name a cwd (core/work-folders.ts, kind "agent"): `roots`, absolute, for a
   * confined task (the runner's workspace folder and the operator's list); `own`, the runner's
   * folders besides `scratchRoot` (the agents' workspace folder) that no task may work in, a
   * platform admin's neither, though a root holds them: its home, the server's home.
   */
  folders: { roots: readonly string[]; own?: readonly string[] };
  /**
   * Why this runner's sandbox would not let a turn work in a task's own `cwd` (the executor's
   * `cwdRefusal`): asked in `prepare`, so the run fails AGENT_CWD_NOT_ALLOWED before the agent
   * starts rather than AGENT_CRASHED when its first command is refused. Absent: no sandbox.
   */
  sandboxRefusal?: (cwd: string) => string | undefined;
  /**
   * The runner's own settings laid on a task before anything runs (the agent runner's config.yaml keys: a turn
   * cap, a default model, keys from the runner's env), with what the run should be told.
   */
  prepareTask?: (task: AgentTask) => { task: AgentTask; notices: string[] };
  /** Where a task's `copy_files` are copied from (the runner's `agent_files_dir`); absent: it names none. */
  filesDir?: string;
  /**
   * The credentials of the runner's own environment (its ANTHROPIC_API_KEY, GITHUB_TOKEN ...):
   * masked in everything a task sends back, as a workflow step's are.
   */
  hostSecrets?: readonly string[];
}

/**
 * Runs `agent` jobs: the task pipeline (docs/agents.md) on this runner. prepare (a worktree
 * on a new branch, or the given folder) -> agent -> test -> commit -> push, each a step on the
 * agent's host; then the diff, the transcript and the test output as artifacts; the worktree is
 * released however the task ends.
 */
export class AgentJobHandler implements JobHandler<"agent"> {
  private readonly conversations = new ConversationQueue();
  /** Jobs waiting in `conversations`, by job id. */
  private readonly queued = new Set<string>();

  constructor(private readonly deps: AgentHandlerDeps) {}

  async run(given: AgentJob, io: JobIo): Promise<AgentJobResult> {
    const prepared = this.deps.prepareTask?.(given.payload) ?? { task: given.payload, notices: [] };
    const job: AgentJob = { ...given, payload: prepared.task };
    const task = job.payload;
    const masker = new SecretMasker([
      ...(this.deps.hostSecrets ?? []),
      ...task.secrets,
      ...secretsFromEnv(task.env),
      ...Object.values(task.mcp_servers).flatMap((server) =>
        "env" in server ? secretsFromEnv(server.env) : [],
      ),
      ...(task.git_token ? [task.git_token] : []),
    ]);
    // The result reaches the run record and run.finished: an error may quote a CLI's stderr.
    const ownEndpoint = namesOwnEndpoint(given.payload.env);
    // A follow-up sent while another turn of its conversation runs here starts when that one ends.
    const leave = await this.conversations.enter(task.key, io.signal, () => {
      this.queued.add(given.job_id);
      io.emit({
        type: "notice",
        level: "info",
        message: "another turn of this conversation is running on this runner: this one starts when it ends",
        host: task.agent,
      });
    });
    this.queued.delete(given.job_id);
    if (!leave) {
      return {
        ...emptyAgentResult(task.agent),
        status: "canceled",
        error: { code: "CANCELED", message: "the run was canceled" },
      };
    }
    try {
      return masker.maskDeep(await this.runTask(job, io, masker, { notices: prepared.notices, ownEndpoint }));
    } finally {
      leave();
    }
  }

  waiting(): ReadonlySet<string> {
    return this.queued;
  }

  /** Where a task may name its own cwd, on this runner (core/work-folders.ts). */
  private folderRules(): WorkFolderRules {
    return {
      kind: "agent",
      roots: this.deps.folders.roots,
      own: [this.deps.scratchRoot, ...(this.deps.folders.own ?? [])],
      side: "runner",
    };
  }

  /** The real path of a task's own `cwd`, where it may work; throws AGENT_CWD_NOT_ALLOWED. */
  private async ownCwd(task: AgentTask, cwd: string): Promise<string> {
    const real = await allowedWorkFolder(cwd, agentTaskConfinement.read(task), this.folderRules());
    const refusal = this.deps.sandboxRefusal?.(real);
    if (refusal) throw new RunyardError("AGENT_CWD_NOT_ALLOWED", refusal);
    return real;
  }

  private async runTask(
    job: AgentJob,
    io: JobIo,
    masker: SecretMasker,
    given: { notices: string[]; ownEndpoint: boolean },
  ): Promise<AgentJobResult> {
    const task = job.payload;
    const agent = task.agent;
    const emit = (event: EventInput) => io.emit(masker.maskDeep(event));
    for (const message of given.notices) emit({ type: "notice", level: "warn", message, host: agent });
    const servers = Object.entries(task.mcp_servers);
    if (servers.length > 0) {
      // Said once, so the run's page shows what its agent was given: names, programs and hosts,
      // never their env.
      const named = servers.map(([name, server]) =>
        "url" in server ? `${name} (${new URL(server.url).host})` : `${name} (${server.command})`,
      );
      emit({ type: "notice", level: "info", message: `MCP servers: ${named.join(", ")}`, host: agent });
    }
    const steps = new PipelineSteps(agent, emit);
    const transcript = new BoundedText(maxArtifactChars);
    const started = Date.now();
    const result = emptyAgentResult(agent);
    let workspace: Workspace | undefined;
    let tests: TestsOutcome | undefined;
    try {
      const cwd = await steps.run("prepare", async (say) => {
        this.deps.turns.check?.(task);
        if (task.tests && agentTaskConfinement.read(task) === "confined") checkMemberTests(task.tests);
        workspace = task.repo ? await this.allocate(task, say, io.signal) : undefined;
        // Where the task may work is checked again here, before anything starts, as the server
        // did at submit: the real path, links resolved (core/work-folders.ts).
        const dir =
          workspace?.path ??
          (task.cwd ? await this.ownCwd(task, task.cwd) : undefined) ??
          join(this.deps.scratchRoot, "chats", task.key);
        if (!workspace) {
          await mkdir(dir, { recursive: true, mode: 0o700 });
          say(`working in ${dir}`);
        }
        return { value: dir, end: { status: "success" } };
      });
      if (workspace) result.branch = workspace.branch;
      // A task's own cwd: held to the same folders as its sandbox binds it.
      const rules = this.folderRules();
      const confinement = agentTaskConfinement.read(task);
      const cwdCheck =
        task.cwd && !workspace
          ? (real: string) => realFolderRefusal(real, confinement, rules, task.cwd)?.message
          : undefined;
      if (task.publish_only) return await this.publish(steps, workspace, task, result);

      // Before the first turn only: a follow-up finds the worktree as the last turn left it.
      if (task.turn === 1 && (task.setup || task.copy_files.length > 0)) {
        await steps.run("setup", async (say) => {
          await copyTaskFiles(task.copy_files, this.deps.filesDir, cwd, say, cwdCheck);
          if (task.setup) {
            if (!this.deps.turns.setup) throw new Error("this runner cannot run a setup command");
            await this.deps.turns.setup(task, cwd, {
              say,
              signal: io.signal,
              ownEndpoint: given.ownEndpoint,
              ...(cwdCheck ? { cwdCheck } : {}),
            });
          }
          return { value: undefined, end: { status: "success" } };
        });
      }

      const turn = await steps.run("agent", async () => {
        const outcome = await this.deps.turns.run(task, cwd, {
          signal: io.signal,
          ownEndpoint: given.ownEndpoint,
          ...(cwdCheck ? { cwdCheck } : {}),
          emit: (output) => {
            transcript.push(
              `${JSON.stringify(masker.maskDeep({ ts: new Date().toISOString(), ...output }))}\n`,
            );
            const event = eventOf(output, agent);
            if (event) emit(event);
          },
        });
        return {
          value: outcome,
          end: {
            status: outcome.status,
            exitCode: outcome.status === "success" ? 0 : null,
            ...(outcome.error ? { error: outcome.error } : {}),
            memoryPeakBytes: outcome.memoryPeakBytes,
            cpuMs: outcome.cpuMs,
          },
        };
      });
      Object.assign(result, {
        ...(turn.sessionId ? { session_id: turn.sessionId } : {}),
        ...(turn.model ? { model: turn.model } : {}),
        ...(turn.finalText ? { final_text: masker.mask(turn.finalText) } : {}),
        usage: {
          input_tokens: turn.inputTokens,
          output_tokens: turn.outputTokens,
          ...(turn.costUsd !== undefined ? { cost_usd: turn.costUsd } : {}),
        },
        memory_peak_bytes: turn.memoryPeakBytes,
        cpu_ms: turn.cpuMs,
      });
      if (turn.status !== "success") {
        steps.skipped("test", `the agent ${turn.status}`);
        // What the agent did so far is kept on the branch, never pushed: a follow-up turn resumes
        // a session that remembers it, and must find it in the worktree.
        if (workspace) {
          const made = await this.commit(steps, workspace, task, `WIP (${turn.status}): ${task.title}`);
          if (made) result.commit = made.commit;
        } else {
          steps.skipped("commit", "the task has no repo");
        }
        steps.skipped("push", `the agent ${turn.status}`);
        result.status = turn.status;
        if (turn.error) result.error = turn.error;
        return result;
      }

      if (task.tests) {
        tests = await runAgentTests({
          tests: task.tests,
          runId: task.run_id,
          agent,
          cwd,
          timeoutMs: task.timeout_ms,
          secrets: masker.values(),
          stepRunner: this.deps.stepRunner,
          confinement: agentTaskConfinement.read(task),
          emit,
          signal: io.signal,
        });
        result.tests = { status: tests.status, exit_code: tests.exitCode };
      } else {
        steps.skipped("test", "the task names no tests");
      }
      const testsPassed = !tests || tests.status === "success";

      if (workspace) {
        const commit = await this.commit(steps, workspace, task, task.title);
        if (commit) result.commit = commit.commit;
        if (!task.repo?.push) steps.skipped("push", "the task does not push");
        else if (!testsPassed) steps.skipped("push", "the tests failed");
        else if (!commit) steps.skipped("push", "nothing was committed");
        else {
          await push(steps, workspace);
          result.pushed = true;
        }
      } else {
        steps.skipped("commit", "the task has no repo");
        steps.skipped("push", "the task has no repo");
      }

      if (!testsPassed && tests) {
        result.status =
          tests.status === "canceled" ? "canceled" : tests.status === "timeout" ? "timeout" : "failed";
        result.error = {
          code: tests.status === "canceled" ? "CANCELED" : "AGENT_TESTS_FAILED",
          message: tests.message ?? `the tests ${tests.status} (exit code ${tests.exitCode ?? "none"})`,
        };
        return result;
      }
      result.status = "success";
      return result;
    } catch (error) {
      result.status = io.signal.aborted ? "canceled" : "failed";
      result.error = io.signal.aborted
        ? { code: "CANCELED", message: "the run was canceled" }
        : errorOf(error);
      return result;
    } finally {
      await this.keepArtifacts(job, workspace, transcript, tests, masker, result, emit);
      await workspace?.release().catch(() => undefined);
      result.duration_ms = Date.now() - started;
    }
  }

  /**
   * A push asked after the task ended: the branch as the last turn kept it goes to the remote by
   * the same push step as a task with `push`; the session carries on for a later follow-up.
   */
  private async publish(
    steps: PipelineSteps,
    workspace: Workspace | undefined,
    task: AgentTask,
    result: AgentJobResult,
  ): Promise<AgentJobResult> {
    if (!workspace) {
      throw new RunyardError("INVALID_INPUT", "the task has no repo: there is no branch to push", {
        hint: "Only a task with a repo has a branch to push.",
      });
    }
    for (const name of ["agent", "test", "commit"]) steps.skipped(name, "the run only pushes the branch");
    await push(steps, workspace);
    if (task.session_id) result.session_id = task.session_id;
    if (task.model) result.model = task.model;
    result.pushed = true;
    result.status = "success";
    return result;
  }

  /** The `commit` step: everything the agent left, committed on the task's branch; null when nothing changed. */
  private commit(
    steps: PipelineSteps,
    workspace: Workspace,
    task: AgentTask,
    title: string,
  ): Promise<{ commit: string } | null> {
    return steps.run("commit", async (say) => {
      const made = await workspace.commitAll(commitMessage(task, title));
      say(
        made
          ? `committed ${made.commit.slice(0, 12)} on ${workspace.branch}`
          : "nothing to commit: the agent changed no file",
      );
      return { value: made, end: { status: "success" } };
    });
  }

  private allocate(task: AgentTask, say: (line: string) => void, signal: AbortSignal): Promise<Workspace> {
    const repo = task.repo;
    if (!repo) throw new Error("no repo");
    // The server refuses it at submit; a run from an older server comes unchecked.
    const refusal = agentTaskConfinement.read(task) === "confined" ? agentRepoRefusal(repo.url) : undefined;
    if (refusal) return Promise.reject(refusal);
    return this.deps.workspaces.allocate({
      repoUrl: repo.url,
      ...(repo.base ? { base: repo.base } : {}),
      branch: repo.branch,
      key: repo.key,
      reuse: repo.reuse,
      ...(task.git_token ? { credentials: { token: task.git_token } } : {}),
      signal,
      onProgress: say,
    });
  }

  /** The diff, the transcript and the test output, uploaded and announced; a failed upload is a notice. */
  private async keepArtifacts(
    job: AgentJob,
    workspace: Workspace | undefined,
    transcript: BoundedText,
    tests: TestsOutcome | undefined,
    masker: SecretMasker,
    result: AgentJobResult,
    emit: (event: EventInput) => void,
  ): Promise<void> {
    const agent = job.payload.agent;
    const files: Array<{ name: string; type: string; content: () => Promise<string> }> = [];
    if (workspace) {
      const content = async () => {
        const diff = await workspace.diff();
        result.diff_stats = diff.stats;
        return diff.patch;
      };
      files.push({ name: `${agent}.diff`, type: "text/x-diff", content });
    }
    if (!transcript.empty) {
      files.push({
        name: `${agent}-transcript.jsonl`,
        type: "application/x-ndjson",
        content: async () => transcript.text(),
      });
    }
    if (tests)
      files.push({ name: `${agent}-tests.log`, type: "text/plain", content: async () => tests.output });
    for (const file of files) {
      try {
        const content = masker.mask(await file.content());
        const stored = await this.deps.upload(job.job_id, file.name, file.type, content);
        result.artifacts.push(file.name);
        emit({
          type: "artifact.created",
          name: file.name,
          path: stored.path,
          size: stored.size,
          host: agent,
        });
      } catch (error) {
        emit({
          type: "notice",
          level: "warn",
          message: `artifact ${file.name} was not kept: ${errorOf(error).message}`,
          host: agent,
        });
      }
    }
  }
}

/**
 * The most of one message or tool result an event carries (the transcript artifact has more), and
 * of an artifact the runner keeps in memory: an agent printing without end costs neither the
 * runner's memory nor the run's log beyond these.
 */
const maxEventChars = 64 * 1024;
const maxArtifactChars = 8 * 1024 * 1024;

/** A tool call's input as an event carries it: as it is, or its JSON cut when that is too long. */
function clippedInput(input: unknown): unknown {
  const json = JSON.stringify(input) ?? "";
  return json.length <= maxEventChars ? input : { clipped: clipped(json, maxEventChars) };
}

/** The `push` step: the task's branch to its remote. */
function push(steps: PipelineSteps, workspace: Workspace): Promise<void> {
  return steps.run("push", async (say) => {
    await workspace.push();
    say(`pushed ${workspace.branch}`);
    return { value: undefined, end: { status: "success" } };
  });
}

/** The commit names the task, the run and the agent. */
function commitMessage(task: AgentTask, title: string): string {
  return `${title}\n\nMade by ${task.agent} in runyard run ${task.run_id} (turn ${task.turn}).\n`;
}

/** An adapter's output as a spine event; usage and session ids are summed up by the turn, not sent. */
function eventOf(output: AgentOutput, agent: string): EventInput | undefined {
  switch (output.type) {
    case "message":
      return { type: "agent.message", agent, role: output.role, text: clipped(output.text, maxEventChars) };
    case "tool_call":
      return {
        type: "agent.tool_call",
        agent,
        call_id: output.callId,
        tool: output.tool,
        input: clippedInput(output.input),
      };
    case "tool_result":
      return {
        type: "agent.tool_result",
        agent,
        call_id: output.callId,
        output: clipped(output.output, maxEventChars),
        ...(output.isError !== undefined ? { is_error: output.isError } : {}),
      };
    case "usage":
      return {
        type: "agent.usage",
        agent,
        ...(output.model ? { model: output.model } : {}),
        input_tokens: output.inputTokens,
        output_tokens: output.outputTokens,
        ...(output.costUsd !== undefined ? { cost_usd: output.costUsd } : {}),
      };
    case "notice":
      // A retry or reconnect of the CLI, in the user's sight.
      return {
        type: "notice",
        level: output.level,
        message: clipped(output.text, maxEventChars),
        host: agent,
      };
    case "session":
    case "failure":
      return undefined;
    default:
      return undefined;
  }
}

/** A member's tests are checked again where they run: their containers get no network. */
function checkMemberTests(tests: AgentTests): void {
  const { workflow } = parseWorkflow(testsPlaybook(tests, 1000), "tests.yaml");
  const refusal = workflow && memberTestsRefusal(workflow);
  if (refusal) throw refusal;
}
