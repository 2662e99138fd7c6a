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
  /**
   * The runner's agent state: per agent and conversation a folder that outlives turns (the
   * built-in loop's sessions), so a follow-up turn finds the session the last one left.
   */
  stateRoot: string;
  /** Begins every process tag of this runner's turns (see `killLeftovers`). */
  tagPrefix: string;
  /** The runner variable its config names as the git token (the agent runner's `git_token_env_var`). */
  gitTokenVariable?: string;
  /** Where a runner with Docker runs sandboxed turns; none: a task asking for a sandbox fails. */
  sandbox?: AgentSandboxSettings;
  /**
   * Where a runner in `execution_mode: kubernetes` runs every turn: a Job each (its pod is the
   * turn's sandbox, so a task's own sandbox is not asked of Docker).
   */
  kubernetes?: AgentKubernetesSettings;
  /**
   * The runner runs its steps and turns under bubblewrap (it may serve several principals): every
   * turn's `$HOME` is an empty folder of its own, so the CLIs' config is laid into the
   * conversation's state (`conversationCodexHome`, `conversationConfigHome`); a member's turn starts
   * from the steps' allowlist and its own agent's settings of `env` (memberAgentEnv), never the rest.
   */
  sandboxed?: boolean;
}

/** Runs agent turns on this runner: finds the CLI, gives it a private scratch folder, supervises it. */
export class SupervisedAgentTurns implements AgentTurns {
  constructor(private readonly options: AgentTurnsOptions) {}

  /**
   * Kills what the turns of this runner's earlier life left running (the runner died mid-turn,
   * and the agent's tools had left its process groups). Call at start, before taking work.
   */
  killLeftovers(): number[] {
    return killTagged(`${this.options.tagPrefix}.`, { prefix: true });
  }

  /**
   * Throws when this runner will not run the task's own sandbox (an image its operator does not
   * allow, limits over its ceilings): called before the task's workspace is made, and again
   * before its turn.
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
   * Everything a turn's processes run with, made ready: the CLI, the conversation's state, a
   * scratch folder, the environment, and the launcher of its sandbox (bubblewrap's, or a
   * container's). A setup command runs through the same, so it sees what the turn will.
   * `close` takes down what it made.
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
    // The conversation's own: its follow-ups find the session it left, and no other run (on a
    // shared runner, another tenant's) is shown its transcripts.
    const state = join(this.options.stateRoot, task.agent, conversationFolder(task.key));
    await mkdir(state, { recursive: true, mode: 0o700 });
    const container = kubernetes ? undefined : (task.sandbox ?? this.options.sandbox?.defaultSandbox);
    // A member's turn on a runner that may serve others: none of its operator's credentials but
    // its agent's own, and where a proxy can add that one to its model calls, not even that.
    const member = this.options.sandboxed === true && agentTaskConfinement.read(task) === "confined";
    const memberEnv = member ? memberAgentEnv(task.agent, this.options.env) : undefined;
    const loginRefusal = memberEnv && !io.ownEndpoint ? githubLoginRefusal(task, memberEnv) : undefined;
    if (loginRefusal) return { outcome: loginRefusal };
    // Where the turn's `$HOME` is not the user's (a sandbox shows an empty one, a container its
    // own), the CLIs that read their config from there get it in the conversation's state: Codex
    // a home (CODEX_HOME) with the user's config.toml, OpenCode a config folder (XDG_CONFIG_HOME)
    // with their opencode folder, laid in anew each turn as Claude Code's settings are. Without a
    // sandbox they read the user's own, as when the user runs them by hand.
    const ownHome = Boolean(container) || Boolean(kubernetes) || this.options.sandboxed === true;
    const userCodexHome = this.options.env.CODEX_HOME || join(this.options.env.HOME || homedir(), ".codex");
    const codexHome =
      task.agent !== "codex"
        ? undefined
        : ownHome
          ? await conversationCodexHome(state, userCodexHome, {
              // The operator's own turn runs on the operator's Codex login; a member's, one in a
              // container, or one sent to an endpoint its task names never sees it.
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
    // Under a sandbox the turn sees its worktree and its own state read-write, the CLI read-only,
    // and of its git folders what a commit writes read-write, the rest read-only.
    const exposure: ExecExposure = {
      writable: [scratchDir, state, ...(codexHome?.shown ?? []), ...git.writable],
      readable: [
        // The built-in loop has no CLI file (its path is ""): no folder of it, never the runner's cwd.
        ...[this.options.agentsHome, ...(path ? [dirname(path)] : []), ...cliPackageRoot(path)].filter(
          (folder) => existsSync(folder),
        ),
        ...git.readable,
      ],
      // Where the turn works the handler checked before it (core/work-folders.ts), and a task's
      // own cwd is checked again as the sandbox holds it.
      runnerMadeCwd: true,
      ...(io.cwdCheck ? { cwdCheck: io.cwdCheck } : {}),
    };
    // Whatever the agent started, in its group or out of it, ends with the turn.
    const tag = newProcessTag(this.options.tagPrefix);
    // A container reaches the runner's loopback on the host's network only, else through its
    // egress proxy (by a name of the proxies' own); on another network of the operator's, or none,
    // not at all.
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
    // A member's CLI holds no key of the operator's: a proxy's placeholder, or nothing. (The
    // built-in loop calls its model from the runner, and gives its commands no key.)
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
   * Runs the task's setup command in `cwd` as its turn's processes run (the same sandbox, user,
   * environment and network), before the first turn: each line of its output to `say`. Throws
   * AGENT_SETUP_FAILED with its output's tail when it fails or cannot start.
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
   * Whether the built-in loop, which calls its model from the runner rather than from the turn's
   * container, must call public addresses only: its turn's egress is held (a container without an
   * open network), and its endpoint is the task's (a member's) rather than one the runner's
   * operator lets every such sandbox reach, as the container's egress proxy judges it.
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

  /**
   * The turn's container, where its task or the runner's default asks for one: undefined when
   * the turn runs as processes, a problem when it cannot have the sandbox it asks for.
   */
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
 * Where the CLI's package really lies: `node_modules/.bin/claude` links into its package, which
 * must be seen too (the `node_modules` folder that holds it and its dependencies), or the link
 * leads nowhere inside a sandbox. Never the folder around that `node_modules`: a CLI installed
 * with `npm install` in a user's home would show the agent the whole home.
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
 * The git folders a worktree's commits go to, which lie outside it: `.git` there is a file that
 * names the task repo's folder for this worktree (`gitDir`), whose `commondir` names the task repo
 * itself. Undefined for a folder that is no worktree (a chat folder, a plain repository).
 */
async function worktreeGit(cwd: string): Promise<{ gitDir: string; common: string } | undefined> {
  const pointer = /^gitdir: (.+)$/m.exec(await readFile(join(cwd, ".git"), "utf8").catch(() => ""))?.[1];
  if (!pointer) return undefined;
  const gitDir = resolve(cwd, pointer.trim());
  const common = (await readFile(join(gitDir, "commondir"), "utf8").catch(() => "")).trim();
  return { gitDir, common: common ? resolve(gitDir, common) : gitDir };
}

/**
 * How a turn is shown its worktree's git folders (which lie outside the worktree, in the task's
 * own repo): read-write only what a commit writes (the objects, the refs and their logs, the
 * worktree's own folder with its index and HEAD), the rest read-only. What the agent must never
 * write is what tells the runner's own git, which runs after the turn outside any sandbox (`add`,
 * `commit`, `diff`, `push`, the fetch that keeps the branch in the mirror), what to run or read:
 * the task repo's `config` (`core.fsmonitor`, a filter, `url.*.insteadOf`), its `hooks`, the
 * worktree's `.git` file and its `commondir` (either could lead git to a folder the agent made),
 * the alternates in `objects/info` and replace refs. The folders the alternates name (the
 * mirror's objects, which every task of the repository on this runner borrows) are shown
 * read-only: no more of the mirror, and nothing of it writable. Each read-write folder is a mount
 * point of its own, so it cannot be renamed away with the read-only files inside it. Folders the
 * task repo lacks are made (empty), as a mount needs what it covers.
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
 * The runner's environment as an agent starts from it. The git token stays with git. A task that
 * points its agent at an endpoint of its own (`ownEndpoint`: a `*_BASE_URL`, `*_API_BASE`, ... in
 * the env it was submitted with) gets none of the runner's credentials: they would go to whatever
 * server the submitter named. It brings its own keys.
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
