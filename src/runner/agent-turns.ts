import { existsSync, realpathSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join, resolve, sep } from "node:path";
import { agentPath } from "../agents/availability.js";
import { destinationOf, modelDestinations } from "../agents/model-endpoints.js";
import { adapterFor } from "../agents/registry.js";
import { superviseTurn } from "../agents/supervise.js";
import type { AgentOutput } from "../agents/types.js";
import { agentTaskConfinement } from "../core/confinement.js";
import { RunyardError } from "../core/errors.js";
import { type AgentSandbox, type AgentTask, gitTokenNames } from "../core/jobs/agent.js";
import { traceEnv } from "../core/trace-context.js";
import type { EgressDestination } from "../exec/egress-proxy.js";
import { killTagged, newProcessTag, processTagVariable } from "../exec/tagged-processes.js";
import type { ExecExposure, ProcessLauncher } from "../exec/types.js";
import type { AgentKubernetesSettings } from "./agent-kubernetes.js";
import { type AgentSandboxSettings, type OpenSandbox, openSandbox, sandboxRefusal } from "./agent-sandbox.js";
import { mcpCommandsUnreachable, mcpDestinations, type OpenTurn, runSetup } from "./agent-setup.js";
import { conversationCodexHome, conversationConfigHome } from "./conversation-config.js";
import { type AgentTurns, type TurnIo, type TurnOutcome, turnFailed } from "./handlers/agent.js";
import {
  carriesCredential,
  githubLoginRefusal,
  memberAgentEnv,
  reachedFromContainers,
  withoutOperatorKeys,
} from "./member-keys.js";
import { keyProxyFor } from "./model-key-proxy.js";

export interface AgentTurnsOptions {
  /** `<runyard home>/agents`, where `runyard agents install` puts the CLIs. */
  agentsHome: string;
  /** The runner's environment: PATH to find CLIs, credentials the agents may use. */
  env: Readonly<Record<string, string | undefined>>;
  launcher: ProcessLauncher;
  /** The runner's agent state: a folder per agent and conversation, so a follow-up finds the last session. */
  stateRoot: string;
  /** Begins every process tag of this runner's turns (see `killLeftovers`). */
  tagPrefix: string;
  /** The runner variable its config names as the git token (the agent runner's `git_token_env_var`). */
  gitTokenVariable?: string;
  /** Where a runner with Docker runs sandboxed turns; none: a task asking for a sandbox fails. */
  sandbox?: AgentSandboxSettings;
  /** `execution_mode: kubernetes`: each turn a Job whose pod is its sandbox (none asked of Docker). */
  kubernetes?: AgentKubernetesSettings;
  /**
   * Steps and turns run under bubblewrap (the runner may serve several principals): `$HOME` is
   * empty, so the CLIs' config is laid into the conversation's state; a member's turn starts from
   * the steps' allowlist and its own agent's `env` settings (memberAgentEnv), never the rest.
   */
  sandboxed?: boolean;
}

/** Runs agent turns on this runner: finds the CLI, gives it a private scratch folder, supervises it. */
export class SupervisedAgentTurns implements AgentTurns {
  constructor(private readonly options: AgentTurnsOptions) {}

  /**
   * Kills what turns of this runner's earlier life left running (it died mid-turn, the agent's
   * tools outside its process groups). Call at start, before taking work.
   */
  killLeftovers(): number[] {
    return killTagged(`${this.options.tagPrefix}.`, { prefix: true });
  }

  /**
   * Throws when this runner will not run the task's own sandbox (an image not allowed, limits over
   * its ceilings): before the task's workspace is made, and again before its turn.
   */
  check(task: AgentTask): void {
    const refusal = this.sandboxRefusal(task);
    if (refusal) throw refusal;
  }

  private sandboxRefusal(task: AgentTask): RunyardError | undefined {
    const settings = this.options.sandbox;
    if (this.options.kubernetes || !task.sandbox || !settings) return undefined;
    return sandboxRefusal(task.sandbox, settings);
  }

  /**
   * Everything a turn's processes run with: CLI, conversation state, scratch folder, env, and its
   * sandbox's launcher. A setup command runs through the same, so it sees what the turn will.
   */
  private async open(
    task: AgentTask,
    cwd: string,
    io: TurnIo & { emit(output: AgentOutput): void },
  ): Promise<OpenTurn | { outcome: TurnOutcome }> {
    const kubernetes = this.options.kubernetes;
    const refusal = this.sandboxRefusal(task);
    if (refusal) return { outcome: turnFailed(refusal.toInfo()) };
    const adapter = adapterFor(task.agent);
    const path = adapter ? agentPath(task.agent, this.options) : undefined;
    if (!adapter || path === undefined) {
      return {
        outcome: turnFailed({
          code: "AGENT_NOT_INSTALLED",
          message: adapter
            ? `${task.agent} is not installed on this runner`
            : `this runner has no adapter for ${task.agent}`,
          hint: `Install it on the runner with \`runyard agents install ${task.agent}\`; \`runyard agents\` shows what is there.`,
        }),
      };
    }
    // The conversation's own: no other run (on a shared runner, another tenant's) sees its transcripts.
    const state = join(this.options.stateRoot, task.agent, conversationFolder(task.key));
    await mkdir(state, { recursive: true, mode: 0o700 });
    const container = kubernetes ? undefined : (task.sandbox ?? this.options.sandbox?.defaultSandbox);
    // A member's turn: of the operator's credentials only its agent's own, and none where a proxy
    // can add that one to its model calls.
    const member = this.options.sandboxed === true && agentTaskConfinement.read(task) === "confined";
    const memberEnv = member ? memberAgentEnv(task.agent, this.options.env) : undefined;
    const loginRefusal = memberEnv && !io.ownEndpoint ? githubLoginRefusal(task, memberEnv) : undefined;
    if (loginRefusal) return { outcome: loginRefusal };
    // Where `$HOME` is not the user's (sandbox, container), config is laid anew each turn into the
    // conversation's state: Codex a CODEX_HOME with the user's config.toml, OpenCode an
    // XDG_CONFIG_HOME with their opencode folder. Without a sandbox they read the user's own.
    const ownHome = Boolean(container) || Boolean(kubernetes) || this.options.sandboxed === true;
    const userCodexHome = this.options.env.CODEX_HOME || join(this.options.env.HOME || homedir(), ".codex");
    const codexHome =
      task.agent !== "codex"
        ? undefined
        : ownHome
          ? await conversationCodexHome(state, userCodexHome, {
              // The Codex login: only the operator's own turn, outside containers, to no task-named endpoint.
              login: !member && !container && !kubernetes && !io.ownEndpoint,
            })
          : existsSync(userCodexHome)
            ? { home: userCodexHome, shown: [userCodexHome] }
            : undefined;
    const configHome =
      task.agent === "opencode" && ownHome
        ? await conversationConfigHome(state, this.options.env)
        : undefined;
    const scratchDir = await mkdtemp(join(this.options.stateRoot, "turn-"));
    const worktree = await worktreeGit(cwd);
    const git = await gitExposure(cwd, worktree);
    // Git folders: read-write what a commit writes, the rest read-only (gitExposure).
    const exposure: ExecExposure = {
      writable: [scratchDir, state, ...(codexHome?.shown ?? []), ...git.writable],
      readable: [
        // The built-in loop has no CLI file (its path is ""): no folder of it, never the runner's cwd.
        ...[this.options.agentsHome, ...(path ? [dirname(path)] : []), ...cliPackageRoot(path)].filter(
          (folder) => existsSync(folder),
        ),
        ...git.readable,
      ],
      // The handler checked the cwd (core/work-folders.ts); a task's own is checked again as held.
      runnerMadeCwd: true,
      ...(io.cwdCheck ? { cwdCheck: io.cwdCheck } : {}),
    };
    const tag = newProcessTag(this.options.tagPrefix);
    // A container reaches the runner's loopback on the host's network, else through its egress
    // proxy (by the proxies' own name); on another operator network, or none, not at all.
    const openNetwork = this.options.sandbox?.openNetwork;
    // A Job's pod reaches nothing of the runner's: its key proxies neither.
    const reachesProxies =
      !kubernetes && (!container || openNetwork === "host" || (!openNetwork && container.network !== "none"));
    const proxied =
      memberEnv && !io.ownEndpoint && reachesProxies
        ? await keyProxyFor(task.agent, memberEnv, task.env)
        : undefined;
    const { keyProxy, reached } =
      proxied && container && !openNetwork
        ? reachedFromContainers(proxied)
        : { keyProxy: proxied, reached: [] };
    // A member's CLI holds no operator key: a proxy's placeholder, or nothing. (The built-in loop
    // calls its model from the runner, and gives its commands no key.)
    const runnerEnv = memberEnv
      ? adapter.package
        ? withoutOperatorKeys(keyProxy?.env ?? memberEnv, keyProxy?.proxies ?? [])
        : memberEnv
      : this.options.env;
    const env = {
      ...agentEnv(runnerEnv, Boolean(io.ownEndpoint), this.options.gitTokenVariable),
      [processTagVariable]: tag,
    };
    const folders = {
      // A task's own cwd is the member's folder, never opened; a worktree or chat folder is the runner's.
      runnerMade: [
        ...(task.cwd === undefined ? [cwd] : []),
        scratchDir,
        state,
        ...(worktree ? [worktree.common] : []),
      ],
      reopened: [scratchDir, state],
      borrowed: git.borrowed,
      reached: [...reached, ...mcpDestinations(task)],
    };
    const sandboxed = kubernetes
      ? await (await import("./agent-kubernetes.js")).openKubernetesTurn(kubernetes, {
          task,
          cwd,
          runnerEnv: env,
          ...folders,
        })
      : container
        ? await this.openSandbox(container, task, cwd, exposure, env, io, folders)
        : undefined;
    if (sandboxed && "problem" in sandboxed) {
      await Promise.all(keyProxy?.proxies.map((proxy) => proxy.close()) ?? []);
      await rm(scratchDir, { recursive: true, force: true });
      return {
        outcome: turnFailed({ code: "AGENT_CRASHED", message: sandboxed.problem, hint: sandboxed.hint }),
      };
    }
    const base = sandboxed?.launcher ?? this.options.launcher;
    const launcher: ProcessLauncher = {
      run: (request) => base.run({ ...request, exposure }),
      close: async () => {},
    };
    return {
      adapter,
      path,
      state,
      scratchDir,
      env,
      container,
      launcher,
      ...(codexHome ? { codexHome: codexHome.home } : {}),
      ...(configHome ? { configHome } : {}),
      close: async () => {
        killTagged(tag);
        await Promise.all(keyProxy?.proxies.map((proxy) => proxy.close()) ?? []);
        await sandboxed?.close();
        await rm(scratchDir, { recursive: true, force: true });
      },
    };
  }

  async run(
    task: AgentTask,
    cwd: string,
    io: TurnIo & { emit(output: AgentOutput): void },
  ): Promise<TurnOutcome> {
    const opened = await this.open(task, cwd, io);
    if ("outcome" in opened) return opened.outcome;
    const { adapter, path, state, scratchDir, env, container, launcher } = opened;
    try {
      const unreachable = await mcpCommandsUnreachable(task, cwd, opened, io.signal);
      if (unreachable) return unreachable;
      const result = await superviseTurn(
        adapter,
        {
          prompt: task.prompt,
          cwd,
          ...(task.model ? { model: task.model } : {}),
          extraArgs: task.extra_args,
          env: {
            // An agent that commits on its own (Claude Code often does) needs an identity.
            GIT_AUTHOR_NAME: "runyard",
            GIT_AUTHOR_EMAIL: "runyard@localhost",
            GIT_COMMITTER_NAME: "runyard",
            GIT_COMMITTER_EMAIL: "runyard@localhost",
            ...(opened.codexHome ? { CODEX_HOME: opened.codexHome } : {}),
            ...(opened.configHome ? { XDG_CONFIG_HOME: opened.configHome } : {}),
            RUNYARD_AGENT_STATE_DIR: state,
            ...task.env,
            ...traceEnv(task.trace),
            ...(this.loopCallsPublicOnly(task, container, env) ? { RUNYARD_MODEL_PUBLIC_ONLY: "1" } : {}),
          },
          ...(task.session_id ? { sessionId: task.session_id } : {}),
          scratchDir,
          mcpServers: task.mcp_servers,
        },
        path,
        {
          timeoutMs: task.timeout_ms,
          stallMs: task.stall_ms,
          ...(task.budget ? { budget: task.budget } : {}),
          ...(task.spend_limit ? { spendLimit: task.spend_limit } : {}),
        },
        { emit: io.emit, launcher, signal: io.signal, env },
      );
      const { totals, lastMessage, exitCode: _exitCode, ...end } = result;
      const model = totals.model || task.model;
      return {
        ...end,
        ...(model ? { model } : {}),
        inputTokens: totals.inputTokens,
        outputTokens: totals.outputTokens,
        ...(totals.costUsd !== undefined ? { costUsd: totals.costUsd } : {}),
        ...(lastMessage ? { finalText: lastMessage } : {}),
      };
    } finally {
      await opened.close();
    }
  }

  /**
   * Runs the task's setup command before the first turn, as its turns run (same sandbox, user, env,
   * network), each output line to `say`. Throws AGENT_SETUP_FAILED with the output's tail.
   */
  async setup(task: AgentTask, cwd: string, io: TurnIo & { say(line: string): void }): Promise<void> {
    const script = task.setup;
    if (!script) return;
    const opened = await this.open(task, cwd, {
      ...io,
      emit: (output) => {
        if (output.type === "notice") io.say(output.text);
      },
    });
    if ("outcome" in opened) {
      const error = opened.outcome.error;
      throw new RunyardError("AGENT_SETUP_FAILED", `the setup command could not run: ${error?.message}`, {
        ...(error?.hint ? { hint: error.hint } : {}),
      });
    }
    try {
      await runSetup(script, cwd, opened, task, io);
    } finally {
      await opened.close();
    }
  }

  /**
   * Whether the built-in loop, which calls its model from the runner, not the container, must call
   * public addresses only: the container's egress is held (no open network) and its endpoint is
   * the task's, not one the operator lets every such sandbox reach (as the egress proxy judges).
   */
  private loopCallsPublicOnly(
    task: AgentTask,
    container: AgentSandbox | undefined,
    env: Readonly<Record<string, string | undefined>>,
  ): boolean {
    const settings = this.options.sandbox;
    const named = task.env.OPENAI_BASE_URL;
    if (task.agent !== "openai" || !container || !settings || settings.openNetwork || !named) return false;
    const destination = destinationOf(named);
    if (!destination) return false;
    const operator = [...modelDestinations(task.agent, env, {}), ...settings.allow];
    return !operator.some((entry) => entry.host === destination.host && entry.port === destination.port);
  }

  /** The turn's container, asked by its task or the runner's default; a problem when it cannot have it. */
  private async openSandbox(
    sandbox: AgentSandbox,
    task: AgentTask,
    cwd: string,
    exposure: ExecExposure,
    env: Readonly<Record<string, string | undefined>>,
    io: { emit(output: AgentOutput): void },
    folders: { runnerMade: string[]; reopened: string[]; borrowed: string[]; reached: EgressDestination[] },
  ): Promise<OpenSandbox | { problem: string; hint: string }> {
    const settings = this.options.sandbox;
    if (!settings) {
      return {
        problem: "this task asks for a sandbox, and this runner has no Docker engine to run one",
        hint: "Start Docker on the runner (or point DOCKER_HOST at it) and restart the runner; it then advertises the docker label.",
      };
    }
    const opened = await openSandbox(sandbox, settings, {
      agent: task.agent,
      runId: task.run_id,
      cwd,
      exposure,
      runnerEnv: env,
      taskEnv: task.env,
      remote: task.repo?.url,
      stateRoot: this.options.stateRoot,
      agentsHome: this.options.agentsHome,
      ...folders,
      refused: (destination) =>
        io.emit({
          type: "notice",
          level: "warn",
          text: `egress to ${destination.host}:${destination.port} refused: a sandboxed agent reaches only its model endpoint`,
        }),
    });
    if ("problem" in opened) return opened;
    for (const text of opened.notices) io.emit({ type: "notice", level: "warn", text });
    return opened;
  }
}

/** A conversation's key as a folder name: nothing in it leads out of the agent's state. */
function conversationFolder(key: string): string {
  const name = key.replace(/[^A-Za-z0-9_.-]/g, "_");
  return /^\.*$/.test(name) ? `_${name}` : name;
}

/**
 * The `node_modules` that `node_modules/.bin/claude` links into, or the link leads nowhere in a
 * sandbox. Never the folder around it: a CLI `npm install`ed in a home would show the whole home.
 */
function cliPackageRoot(path: string): string[] {
  if (!path) return [];
  try {
    const real = realpathSync(path);
    const marker = `${sep}node_modules${sep}`;
    const at = real.indexOf(marker);
    return [at > 0 ? real.slice(0, at + marker.length - 1) : dirname(real)];
  } catch {
    return [];
  }
}

/**
 * The git folders outside a worktree its commits go to: its `.git` file names `gitDir`, whose
 * `commondir` names the task repo. Undefined for no worktree (a chat folder, a plain repository).
 */
async function worktreeGit(cwd: string): Promise<{ gitDir: string; common: string } | undefined> {
  const pointer = /^gitdir: (.+)$/m.exec(await readFile(join(cwd, ".git"), "utf8").catch(() => ""))?.[1];
  if (!pointer) return undefined;
  const gitDir = resolve(cwd, pointer.trim());
  const common = (await readFile(join(gitDir, "commondir"), "utf8").catch(() => "")).trim();
  return { gitDir, common: common ? resolve(gitDir, common) : gitDir };
}

/**
 * A turn's view of its worktree's git folders: read-write only what a commit writes (objects,
 * refs and their logs, the worktree's folder with its index and HEAD). Read-only is what tells
 * the runner's own git, run after the turn outside any sandbox (`add`, `commit`, `diff`, `push`,
 * the mirror fetch), what to run or read: `config` (`core.fsmonitor`, a filter,
 * `url.*.insteadOf`), `hooks`, the `.git` file and `commondir` (either could lead git to a folder
 * the agent made), `objects/info` alternates and replace refs. The alternates' folders (the
 * mirror's objects, borrowed by every task of the repository) are read-only too. Each read-write
 * folder is its own mount point, so it cannot be renamed away with read-only files inside it.
 * Missing folders are made empty, as a mount needs what it covers.
 */
async function gitExposure(
  cwd: string,
  git: { gitDir: string; common: string } | undefined,
): Promise<{ writable: string[]; readable: string[]; borrowed: string[] }> {
  if (!git) return { writable: [], readable: [], borrowed: [] };
  const { gitDir, common } = git;
  const writable = ["objects", "refs", "logs"].map((name) => join(common, name));
  const readable = [join(common, "objects", "info"), join(common, "refs", "replace")];
  for (const folder of [...writable, ...readable]) await mkdir(folder, { recursive: true });
  if (gitDir !== common) writable.push(gitDir);
  readable.push(common, join(cwd, ".git"), join(gitDir, "commondir"), join(gitDir, "gitdir"));
  const borrowed = (await borrowedObjects(join(common, "objects"))).filter((path) => existsSync(path));
  return { writable, readable: [...readable.filter((path) => existsSync(path)), ...borrowed], borrowed };
}

/** The object folders a repo's `objects/info/alternates` names (relative ones from its objects folder). */
async function borrowedObjects(objects: string): Promise<string[]> {
  const text = await readFile(join(objects, "info", "alternates"), "utf8").catch(() => "");
  return text
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"))
    .map((line) => resolve(objects, line));
}

/**
 * The runner's env as an agent starts from it, without the git token. A task naming its own
 * endpoint (`ownEndpoint`: a `*_BASE_URL`, `*_API_BASE`, ... in its env) gets none of the runner's
 * credentials, which would go to whatever server the submitter named.
 */
export function agentEnv(
  runner: Readonly<Record<string, string | undefined>>,
  ownEndpoint: boolean,
  gitTokenVariable?: string,
): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = {};
  for (const [name, value] of Object.entries(runner)) {
    if (gitTokenNames.includes(name) || name === gitTokenVariable) continue;
    if (ownEndpoint && carriesCredential(name)) continue;
    env[name] = value;
  }
  return env;
}
