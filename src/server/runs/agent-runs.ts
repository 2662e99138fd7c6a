import { agentNames } from "../../agents/registry.js";
import { agentRepoRefusal } from "../../core/agent-repo.js";
import { groupForRepo, type RepoRoute } from "../../core/config-file.js";
import { agentTaskConfinement, type Confinement } from "../../core/confinement.js";
import { RunyardError } from "../../core/errors.js";
import type { AgentSummary, ErrorInfo, RunStatus } from "../../core/events.js";
import {
  type AgentJob,
  AgentJobResult,
  type AgentSandbox,
  type AgentTask,
  type AgentTests,
  agentEndedEarly,
  containerMaxima,
  gitTokenNames,
} from "../../core/jobs/agent.js";
import { type McpServers, mcpAgents } from "../../core/jobs/agent-tools.js";
import { isSecretName } from "../../core/masking.js";
import { minimumContainerMemory, parseMemorySize } from "../../core/memory-size.js";
import { quoted } from "../../core/quoted-input.js";
import { workFolderRefusal } from "../../core/work-folders.js";
import type { Store } from "../../store/index.js";
import { servesTenant } from "../../store/placement.js";
import { dockerRunnerLabel } from "../../workflow/model.js";
import { parseWorkflow } from "../../workflow/parse.js";
import { suggestionHint } from "../../workflow/suggest.js";
import { memberTestsRefusal, testsPlaybook } from "../../workflow/tests-playbook.js";
import type { JobQueue } from "../job-queue.js";
import { OutboundPolicy } from "../outbound/outbound-policy.js";
import type { SpendBudgets } from "../spend-budgets.js";
import type { RunTracing } from "../tracing/tracing.js";
import { type AgentFollowUp, AgentRunSpec, composePrompt, type SubmitAgentRunBody } from "./agent-spec.js";
import { runAgentTurn } from "./agent-step-runners.js";
import type { ActiveRun, PreparedRun, RunKindModule } from "./run-kind.js";
import { openPullRequests } from "./run-pull-request.js";
import { resolveStoredSecrets, secretsMissing } from "./stored-secrets.js";

/** The job id an agent of a run always gets, so a resumed engine finds its job again. */
export function agentJobId(runId: string, agent: string): string {
  return `job_${runId}_${agent}`;
}

/**
 * Agent runs: each agent (several in a fan-out) becomes an `agent` job for a runner with that agent
 * and mode (`issue` for a repo task, else `chat`); the run ends with every agent's result side by side.
 */
export class AgentRuns implements RunKindModule {
  constructor(
    private readonly store: Pick<Store, "runs" | "jobs" | "runners" | "secrets" | "forges">,
    private readonly queue: JobQueue,
    private readonly repoRoutes: RepoRoute[] = [],
    /** Where a confined run's agent tasks may name a cwd, and the server's home, where no task may (core/work-folders.ts). */
    private readonly folders: { roots: readonly string[]; own: readonly string[] } = { roots: [], own: [] },
    /** The tenants' and users' spend budgets: a turn past one is refused, a running one capped. */
    private readonly budgets?: SpendBudgets,
    /** Where a member's MCP server URL may lead (config `mcp_hosts:`): public addresses, and those it lists. */
    private readonly mcpHosts = new OutboundPolicy("mcp_hosts", []),
    /** Tracing on: each agent's job names its turn's span (`TRACEPARENT`). */
    private readonly tracing?: Pick<RunTracing, "turnTrace">,
  ) {}

  /** Refuses unknown agents, a cwd the run may not work in and secrets the tenant has not stored. */
  async prepare(
    body: SubmitAgentRunBody,
    owner: {
      tenantId: string | null;
      tokenId?: string | null;
      userId?: string | null;
      confinement?: Confinement;
    },
  ): Promise<PreparedRun> {
    const tenantId = owner.tenantId;
    const confinement = owner.confinement ?? "confined";
    const confined = confinement === "confined";
    const agents = body.agents ?? [body.agent ?? "claude_code"];
    if (body.agents && body.agent) {
      throw new RunyardError("INVALID_INPUT", "give either agent or agents, not both", {
        hint: 'One agent: "agent":"codex"; a fan-out: "agents":["claude_code","codex"].',
      });
    }
    for (const agent of agents) {
      if (!(agentNames as readonly string[]).includes(agent)) {
        throw new RunyardError("INVALID_INPUT", `agent ${JSON.stringify(agent)} is not one runyard knows`, {
          hint: suggestionHint(agent, agentNames, "agents"),
        });
      }
    }
    if (new Set(agents).size !== agents.length) {
      throw new RunyardError("INVALID_INPUT", "agents lists the same agent twice", {
        hint: "A fan-out runs each agent once; list each name once.",
      });
    }
    if (!body.prompt && !body.title && !body.description) {
      throw new RunyardError("INVALID_INPUT", "the task is empty: give prompt, or title and description", {
        hint: 'E.g. {"kind":"agent","agent":"claude_code","prompt":"add a README"}.',
      });
    }
    if (body.cwd && body.repo) {
      throw new RunyardError("INVALID_INPUT", "give either cwd or repo, not both", {
        hint: "repo: the agent works in a fresh worktree of it; cwd: in a folder of the runner as it is.",
      });
    }
    if (body.cwd) {
      const refusal = workFolderRefusal(body.cwd, confinement, { kind: "agent", ...this.folders });
      if (refusal) throw refusal;
    }
    if (body.repo && confined) {
      const refusal = agentRepoRefusal(body.repo.url);
      if (refusal) throw refusal;
    }
    if (body.tests) checkTests(body.tests, confined);
    if (body.sandbox) checkSandbox(body.sandbox);
    checkMcpAgents(agents, body.mcp_servers ?? {});
    if (confined) checkMcpUrls(body.mcp_servers ?? {}, this.mcpHosts);
    const { missing } = await resolveStoredSecrets(this.store.secrets, tenantId, body.secrets);
    if (missing.length > 0) throw secretsMissing(missing, tenantId);
    await this.budgets?.admit({
      tenantId,
      createdBy: owner.tokenId ?? null,
      ...(owner.userId !== undefined ? { createdByUser: owner.userId } : {}),
    });
    const { title, prompt } = composePrompt(body);
    const spec: AgentRunSpec = {
      agents,
      prompt,
      title,
      ...(body.model ? { model: body.model } : {}),
      extra_args: body.extra_args,
      env: body.env,
      secrets: body.secrets,
      ...(body.cwd ? { cwd: body.cwd } : {}),
      ...agentTaskConfinement.write(confinement),
      ...(body.repo ? { repo: body.repo } : {}),
      ...(body.tests ? { tests: body.tests } : {}),
      ...(body.sandbox ? { sandbox: body.sandbox } : {}),
      timeout_secs: body.timeout_secs,
      stall_secs: body.stall_secs,
      ...(body.budget ? { budget: body.budget } : {}),
      mcp_servers: body.mcp_servers ?? {},
      ...(body.setup ? { setup: body.setup } : {}),
      copy_files: body.copy_files ?? [],
      ...(body.group ? { group: body.group } : {}),
      labels: body.labels,
    };
    return { name: title, spec, vars: {} };
  }

  /** A follow-up: same settings, new text as prompt, each agent resuming its session, workspace, runner. */
  async prepareFollowUp(
    parentId: string,
    text: string,
    owner?: { tenantId: string | null; tokenId: string | null },
  ): Promise<PreparedRun> {
    const parent = await this.store.runs.get(parentId);
    if (!parent) throw new RunyardError("NOT_FOUND", `run ${parentId} does not exist`);
    if (owner) await this.budgets?.admit({ tenantId: owner.tenantId, createdBy: owner.tokenId });
    if (parent.kind !== "agent") {
      throw new RunyardError("INVALID_INPUT", `run ${parentId} is a ${parent.kind} run, not an agent run`, {
        hint: "Follow-up messages continue agent runs only.",
      });
    }
    if (parent.status === "queued" || parent.status === "running") {
      throw new RunyardError("CONFLICT", `run ${parentId} is still ${parent.status}`, {
        hint: "Wait for its run.finished event, then send the message.",
      });
    }
    const spec = AgentRunSpec.parse(parent.spec);
    const agents: AgentFollowUp["agents"] = {};
    for (const job of await this.store.jobs.list({ runId: parentId })) {
      const result = AgentJobResult.safeParse(job.result);
      if (!result.success || !result.data.session_id) continue;
      agents[result.data.agent] = {
        session_id: result.data.session_id,
        ...(result.data.branch ? { branch: result.data.branch } : {}),
        ...(job.runner_id ? { runner_id: job.runner_id } : {}),
      };
    }
    const resumable = spec.agents.filter((agent) => agents[agent]);
    for (const agent of resumable) {
      const runnerId = agents[agent]?.runner_id;
      const runner = runnerId ? await this.store.runners.get(runnerId) : undefined;
      if (runnerId && runner?.status !== "online") {
        throw new RunyardError(
          "CONFLICT",
          `runner ${runnerId}, which holds ${agent}'s session and workspace, is ${runner ? "offline" : "gone"}`,
          {
            hint: "Start that runner again (with the same --id), or submit a new run instead of a follow-up.",
          },
        );
      }
    }
    if (resumable.length === 0) {
      throw new RunyardError("CONFLICT", `no agent of run ${parentId} left a session to continue`, {
        hint: "The agent failed before it started a session; submit a new run instead.",
      });
    }
    const followUp: AgentFollowUp = {
      parent_run_id: parentId,
      conversation: spec.follow_up?.conversation ?? parentId,
      turn: (spec.follow_up?.turn ?? 1) + 1,
      agents,
    };
    const next: AgentRunSpec = { ...spec, agents: resumable, prompt: text, follow_up: followUp };
    return { name: spec.title, spec: next, vars: {} };
  }

  /**
   * A run that publishes a finished run's branches (`push`, or `pull_request` on the repo's forge) on the
   * runners that keep them, through the push step of a task with `push`. Refused with no repo or branch.
   */
  async preparePublish(parentId: string, publish: "push" | "pull_request"): Promise<PreparedRun> {
    const parent = await this.store.runs.get(parentId);
    if (!parent) throw new RunyardError("NOT_FOUND", `run ${parentId} does not exist`);
    const parentSpec = parent.kind === "agent" ? AgentRunSpec.safeParse(parent.spec) : undefined;
    if (parentSpec?.success && !parentSpec.data.repo) {
      throw new RunyardError("INVALID_INPUT", `run ${parentId} has no repo: it made no branch to push`, {
        hint: "Only an agent run on a repo (`--repo`) has a branch to push or open a pull request from.",
      });
    }
    const prepared = await this.prepareFollowUp(parentId, `Publish the branch (${publish})`);
    const spec = prepared.spec as AgentRunSpec;
    const agents = spec.agents.filter((agent) => spec.follow_up?.agents[agent]?.branch);
    if (agents.length === 0) {
      throw new RunyardError("CONFLICT", `no agent of run ${parentId} left a branch to push`, {
        hint: "The agent failed before it made its branch; submit a new run instead.",
      });
    }
    const next: AgentRunSpec = { ...spec, agents, publish };
    return { name: spec.title, spec: next, vars: {} };
  }

  async start(run: ActiveRun): Promise<void> {
    const parsed = AgentRunSpec.safeParse(run.record.spec);
    if (!parsed.success) throw new RunyardError("INVALID_INPUT", "the stored agent run spec is unreadable");
    const spec = parsed.data;
    const started = Date.now();
    const secrets = await resolveStoredSecrets(this.store.secrets, run.record.tenant_id, spec.secrets);
    if (secrets.missing.length > 0) {
      const error = secretsMissing(secrets.missing, run.record.tenant_id).toInfo();
      run.sink.emit({ type: "run.finished", status: "failed", error, duration_ms: 0 });
      return;
    }
    const results = await Promise.all(
      spec.agents.map((agent) => this.runAgent(run, spec, agent, secrets.values)),
    );
    if (spec.publish === "pull_request" && spec.repo) {
      await openPullRequests(this.store, run, spec.title, spec.repo, results);
    }
    const summaries = results.map(summaryOf);
    const { status, error } = overall(results, run.signal.aborted);
    run.sink.emit({
      type: "run.finished",
      status,
      ...(error ? { error } : {}),
      duration_ms: Date.now() - started,
      agents: summaries,
    });
  }

  private async runAgent(
    run: ActiveRun,
    spec: AgentRunSpec,
    agent: string,
    secretValues: Record<string, string>,
  ): Promise<AgentJobResult> {
    const runId = run.record.id;
    const env = { ...spec.env, ...secretValues };
    const forgeToken = spec.forge_id ? (await this.store.forges.secrets(spec.forge_id))?.token : undefined;
    const gitToken = forgeToken ?? gitTokenNames.map((name) => env[name]).find((value) => value);
    for (const name of gitTokenNames) delete env[name];
    const earlier = spec.follow_up?.agents[agent];
    const task: AgentTask = {
      run_id: runId,
      agent,
      prompt: spec.prompt,
      title: spec.title,
      key: `${spec.follow_up?.conversation ?? runId}-${agent}`,
      ...(spec.model ? { model: spec.model } : {}),
      extra_args: spec.extra_args,
      env,
      ...(spec.cwd ? { cwd: spec.cwd } : {}),
      ...agentTaskConfinement.write(agentTaskConfinement.read(spec)),
      ...(spec.repo
        ? {
            repo: {
              url: spec.repo.url,
              ...(spec.repo.base ? { base: spec.repo.base } : {}),
              // A fan-out gives each agent a branch of its own, a branch name given or not.
              branch:
                earlier?.branch ??
                (spec.repo.branch
                  ? spec.agents.length > 1
                    ? `${spec.repo.branch}-${agent}`
                    : spec.repo.branch
                  : `runyard/${runId}-${agent}`),
              push: spec.repo.push || spec.publish !== undefined,
              key: `${spec.follow_up?.conversation ?? runId}-${agent}`,
              reuse: earlier?.branch !== undefined,
            },
          }
        : {}),
      ...(gitToken ? { git_token: gitToken } : {}),
      ...(spec.tests ? { tests: spec.tests } : {}),
      ...(spec.sandbox ? { sandbox: spec.sandbox } : {}),
      timeout_ms: spec.timeout_secs * 1000,
      stall_ms: spec.stall_secs * 1000,
      ...(spec.budget ? { budget: spec.budget } : {}),
      mcp_servers: spec.mcp_servers,
      ...(spec.setup ? { setup: spec.setup } : {}),
      copy_files: spec.copy_files,
      // The runner fills this in from its own config.
      mcp_operator: [],
      ...(earlier ? { session_id: earlier.session_id } : {}),
      turn: spec.follow_up?.turn ?? 1,
      ...(spec.publish ? { publish_only: true } : {}),
      secrets: [
        ...Object.values(secretValues),
        ...Object.entries(spec.env)
          .filter(([name]) => isSecretName(name))
          .map(([, value]) => value),
        // An MCP server's key is masked as the agent's own is.
        ...Object.values(spec.mcp_servers).flatMap((server) =>
          "env" in server
            ? Object.entries(server.env)
                .filter(([name]) => isSecretName(name))
                .map(([, value]) => value)
            : [],
        ),
        ...(gitToken ? [gitToken] : []),
      ],
    };
    const trace = await this.tracing?.turnTrace(runId, agent);
    if (trace) task.trace = trace;
    const job: AgentJob = { job_id: agentJobId(runId, agent), kind: "agent", payload: task };
    const group = spec.group ?? this.routeGroup(spec.repo?.url);
    const labels = [
      ...spec.labels,
      `agent:${agent}`,
      spec.repo ? "mode:issue" : "mode:chat",
      ...(earlier?.runner_id ? [`runner:${earlier.runner_id}`] : []),
      // Tests in a container need a runner that can reach Docker.
      ...((spec.tests && testsNeedDocker(spec.tests)) || spec.sandbox ? [dockerRunnerLabel] : []),
    ];
    const requirements = { ...(group ? { group } : {}), labels };
    // A task no runner could ever take would wait in the queue for good, saying nothing.
    const nobody = await this.noRunnerFor(requirements, run.record.tenant_id, agent);
    if (nobody) return agentEndedEarly(agent, "failed", nobody);
    // A push spends nothing.
    const budgets = spec.publish ? undefined : this.budgets;
    const placement = { host: agent, requirements };
    const outcome = await runAgentTurn(this.queue, budgets, run, job, placement, run.signal);
    return "refused" in outcome ? agentEndedEarly(agent, "failed", outcome.refused) : outcome;
  }

  /** Why no registered runner, online or not (a restarted one returns under its id), could take this job. */
  private async noRunnerFor(
    requirements: { group?: string; labels: string[] },
    tenantId: string | null,
    agent: string,
  ): Promise<ErrorInfo | undefined> {
    const runners = await this.store.runners.list();
    const fits = runners.some(
      (runner) =>
        servesTenant(runner, tenantId) &&
        (!requirements.group || runner.group === requirements.group) &&
        requirements.labels.every(
          (label) => runner.labels.includes(label) || label === `runner:${runner.id}`,
        ),
    );
    if (fits) return undefined;
    const where = [
      requirements.group ? `in group ${requirements.group}` : "",
      ...requirements.labels.filter((l) => !l.startsWith("agent:")).map((l) => `with ${l}`),
    ]
      .filter(Boolean)
      .join(" ");
    return {
      code: "AGENT_NOT_INSTALLED",
      message: `no runner ${where ? `${where} ` : ""}has ${agent}`,
      hint: `Install it on a runner with \`runyard agents install ${agent}\` (a runner advertises the agents it finds when it starts), or choose an agent a runner has: GET /health/agents.`,
    };
  }

  /** The runner group of a repo from the config file's `repos:` (by name or URL). */
  private routeGroup(url: string | undefined): string | undefined {
    return url ? groupForRepo(this.repoRoutes, url) : undefined;
  }
}

function summaryOf(result: AgentJobResult): AgentSummary {
  return {
    agent: result.agent,
    status: result.status,
    ...(result.error ? { error: result.error } : {}),
    ...(result.model ? { model: result.model } : {}),
    ...(result.session_id ? { session_id: result.session_id } : {}),
    ...(result.branch ? { branch: result.branch } : {}),
    ...(result.commit ? { commit: result.commit } : {}),
    pushed: result.pushed,
    ...(result.diff_stats ? { diff_stats: result.diff_stats } : {}),
    ...(result.tests ? { tests: result.tests } : {}),
    input_tokens: result.usage.input_tokens,
    output_tokens: result.usage.output_tokens,
    ...(result.usage.cost_usd !== undefined ? { cost_usd: result.usage.cost_usd } : {}),
    duration_ms: result.duration_ms,
    memory_peak_bytes: result.memory_peak_bytes,
    cpu_ms: result.cpu_ms,
    ...(result.final_text ? { final_text: result.final_text } : {}),
    artifacts: result.artifacts,
  };
}

/** A run succeeds when every agent did; else it takes the first failure, naming how many failed. */
function overall(results: AgentJobResult[], canceled: boolean): { status: RunStatus; error?: ErrorInfo } {
  if (canceled) return { status: "canceled", error: { code: "CANCELED", message: "the run was canceled" } };
  const failed = results.filter((result) => result.status !== "success");
  const first = failed[0];
  if (!first) return { status: "success" };
  const status: RunStatus =
    first.status === "timeout" ? "timeout" : first.status === "canceled" ? "canceled" : "failed";
  const error = first.error ?? { code: "AGENT_CRASHED", message: `${first.agent} ${first.status}` };
  if (results.length === 1) return { status, error };
  return {
    status,
    error: {
      ...error,
      message: `${failed.length} of ${results.length} agents failed (${failed.map((r) => `${r.agent}: ${r.error?.code ?? r.status}`).join(", ")}); first: ${error.message}`,
    },
  };
}

/**
 * The tests checked at submit as the runner reads them (the command a playbook, its executor that
 * playbook's host), so a bad image or memory is refused at once, not after the agent's work.
 */
function checkTests(tests: AgentTests, confined: boolean): void {
  if (tests.executor && tests.command === undefined) {
    throw new RunyardError("INVALID_INPUT", "tests.executor goes with tests.command", {
      hint: "A playbook runs in containers through its own inventory: give its host `executor: docker` and `image`.",
    });
  }
  if (confined) {
    const { workflow } = parseWorkflow(testsPlaybook(tests, 1000), "tests.yaml");
    const refusal = workflow && memberTestsRefusal(workflow);
    if (refusal) throw refusal;
  }
  if (!tests.executor) return;
  const { diagnostics } = parseWorkflow(testsPlaybook(tests, 1000), "tests.executor");
  if (diagnostics.length === 0) {
    if (tests.executor.memory !== undefined)
      checkMemory("tests.executor.memory", tests.executor.memory, "512m");
    return;
  }
  throw new RunyardError(
    "INVALID_INPUT",
    `tests.executor: ${diagnostics.map((d) => d.message.replace('of host "tests" ', "")).join("; ")}`,
    {
      hint:
        diagnostics.find((d) => d.hint)?.hint ??
        "Fix tests.executor: image, memory (like 512m), cpus, pids, network.",
    },
  );
}

/**
 * Refuses a member's MCP URL naming an internal address `mcp_hosts:` does not list, as direct hosts and
 * notify URLs are; the runner's egress checks it again when the agent connects.
 */
function checkMcpUrls(servers: McpServers, policy: OutboundPolicy): void {
  for (const [name, server] of Object.entries(servers)) {
    if (!("url" in server)) continue;
    const refusal = policy.refusalOf(server.url);
    if (!refusal) continue;
    throw new RunyardError(
      "DESTINATION_NOT_ALLOWED",
      `mcp_servers.${name}: ${quoted(server.url)}: ${refusal.message}`,
      { hint: refusal.hint },
    );
  }
}

/** MCP servers go only to agents with an MCP client: the built-in loop has none. */
function checkMcpAgents(agents: readonly string[], servers: McpServers): void {
  if (Object.keys(servers).length === 0) return;
  const without = agents.filter((agent) => !mcpAgents.includes(agent));
  if (without.length === 0) return;
  throw new RunyardError(
    "INVALID_INPUT",
    `mcp_servers: ${without.join(", ")} ${without.length === 1 ? "takes" : "take"} no MCP servers; ${mcpAgents.join(", ")} do`,
    { hint: "Run the task with an agent that takes MCP servers, or give it no mcp_servers." },
  );
}

/**
 * A sandbox's memory is checked at submit, refusing a typo or absurd size at once; its image and limits
 * are the runner's to check, as only it knows its operator's list and ceilings.
 */
function checkSandbox(sandbox: AgentSandbox): void {
  if (sandbox.memory === undefined) return;
  checkMemory("sandbox.memory", sandbox.memory, "2g");
}

function checkMemory(field: string, memory: string | number, example: string): void {
  const bytes = parseMemorySize(memory);
  if (bytes === undefined || bytes < minimumContainerMemory) {
    throw new RunyardError(
      "INVALID_INPUT",
      `${field} must be a size of at least 6m like ${example}, got ${JSON.stringify(memory)}`,
      { hint: "Write bytes or a number with k, m or g, as docker run --memory takes it: 512m, 2g." },
    );
  }
  if (bytes > containerMaxima.memoryBytes) {
    throw new RunyardError(
      "INVALID_INPUT",
      `${field} ${JSON.stringify(memory)} is more than any runner gives a container (at most ${containerMaxima.memory})`,
      {
        hint: `Ask for what the task needs, at most ${containerMaxima.memory}; a runner's own ceiling may be lower.`,
      },
    );
  }
}

/** Whether the tests run in containers: a command with an executor, or a playbook host with one. */
function testsNeedDocker(tests: AgentTests): boolean {
  if (tests.executor) return true;
  if (tests.playbook === undefined) return false;
  const hosts = parseWorkflow(tests.playbook, "tests.yaml").workflow?.hosts ?? {};
  return Object.values(hosts).some((host) => host.kind !== "direct" && host.container !== undefined);
}
