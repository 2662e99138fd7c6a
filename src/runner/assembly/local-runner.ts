import { createHash } from "node:crypto";
import { existsSync, mkdirSync } from "node:fs";
import { lstat, lutimes, readdir, rm } from "node:fs/promises";
import { availableParallelism, totalmem } from "node:os";
import { join, resolve } from "node:path";
import { agentPath } from "../../agents/availability.js";
import { agentNames } from "../../agents/registry.js";
import type { Config } from "../../core/config.js";
import { runnerNotices } from "../../core/config-file.js";
import { RunyardError } from "../../core/errors.js";
import type { Logger } from "../../core/logger.js";
import { parseMemorySize } from "../../core/memory-size.js";
import { acquirePidLock } from "../../core/pid-lock.js";
import type { RunnerInfo } from "../../core/protocol.js";
import { applyRunnerSettings } from "../../core/runner-task-settings.js";
import { version } from "../../core/version.js";
import { createExecutor } from "../../exec/create-executor.js";
import { type DockerEngine, dockerEndpoint } from "../../exec/docker/docker-engine.js";
import { LocalStepRunner } from "../../exec/local-runner.js";
import { nativeHelperPath } from "../../exec/native-helpers.js";
import { OrphanGuard } from "../../exec/orphan-guard.js";
import type { ProcessExecutor } from "../../exec/process/process.js";
import { RunnerInstall } from "../../exec/runner-install.js";
import { removeOwnFolder } from "../../exec/sandbox/run-cgroup.js";
import { probeSandbox } from "../../exec/sandbox/sandbox.js";
import { dockerRunnerLabel } from "../../workflow/model.js";
import { conversationKeepMs, Workspaces } from "../../workspace/workspaces.js";
import type { AgentSandboxSettings, SandboxCeilings } from "../agent-sandbox.js";
import { SupervisedAgentTurns } from "../agent-turns.js";
import { uploadArtifact } from "../artifact-upload.js";
import { AgentJobHandler } from "../handlers/agent.js";
import { StepJobHandler } from "../handlers/step.js";
import { JobJournal } from "../job-journal.js";
import { RunFolders } from "../run-folders.js";
import { RunnerDaemon } from "../runner.js";
import type { RunnerDaemonOptions } from "../runner-options.js";
import { runnerBots } from "./bots.js";
import { dockerSteps } from "./docker-steps.js";
import { runnerStepNetwork } from "./network.js";
import { runnerSandbox } from "./sandbox.js";

/*
 * A runner of this machine assembled from its config: executor, sandbox, Docker and Kubernetes
 * backends, agent and bot handlers, folders, journals, and the daemon that connects it.
 * `runyard runner` and `runyard up` (cli/) parse flags and call `localRunnerDaemon`.
 */
/**
 * How long a run's sandbox outlives its last command where an older server never says the run's
 * end: long enough for the gap between two steps, short enough that idle runs hold no processes.
 * Its folders stay longer (RUNYARD_RUN_TMP_KEEP_SECS); a later step makes it again.
 */
const RUN_SANDBOX_IDLE_MS = 5_000;

/**
 * The runner's agent task handler, and the labels that route agent work to it: `agent:<name>` for
 * each agent installed here, and `mode:chat` / `mode:issue` as its mode takes (the ADOS runner's
 * `ADOS_MODE`). Worktrees a crashed earlier life of this runner left are removed first.
 */
async function agentHandler(
  config: Config,
  env: Record<string, string | undefined>,
  connection: RunnerConnection & { owner: RunnerInstall },
  stateDir: string,
  executor: ProcessExecutor,
  stepRunner: LocalStepRunner,
  docker: DockerEngine | undefined,
): Promise<{ handler: AgentJobHandler; labels: string[]; removeLeftovers?: () => Promise<void> }> {
  const agentsHome = join(connection.home, "agents");
  const workspaceDir = resolve(config.workspaceDir ?? join(connection.home, "workspaces"));
  const root = agentWorkspaceRoot(config, connection);
  const workspaces = new Workspaces({
    root,
    retry: { gitRetries: config.gitRetryCount, baseDelayMs: 1000 },
    logger: connection.logger,
    env,
  });
  const removed = [
    ...(await workspaces.cleanLeftovers()),
    ...(await pruneChats(join(root, "chats"), conversationKeepMs)),
  ];
  if (removed.length > 0)
    connection.logger.warn({ worktrees: removed }, "removed worktrees left by this runner's previous life");
  const installed = agentNames.filter((name) => agentPath(name, { agentsHome, env }) !== undefined);
  const modes = config.mode === "all" ? ["mode:chat", "mode:issue"] : [`mode:${config.mode}`];
  const kubernetes = config.agentKubernetes
    ? await (await import("./kubernetes.js")).agentKubernetesSettings(config, env, connection)
    : undefined;
  const turns = new SupervisedAgentTurns({
    agentsHome,
    env,
    launcher: { run: (request) => executor.run(request), close: async () => {} },
    stateRoot: join(stateDir, "agents"),
    tagPrefix: `runner-${createHash("sha256").update(stateDir).digest("hex").slice(0, 16)}`,
    ...(config.gitTokenEnvVar ? { gitTokenVariable: config.gitTokenEnvVar } : {}),
    ...(docker ? { sandbox: agentSandboxSettings(config, docker, connection) } : {}),
    ...(kubernetes ? { kubernetes } : {}),
    sandboxed: executor.sandboxed,
  });
  const killed = turns.killLeftovers();
  if (killed.length > 0)
    connection.logger.warn(
      { pids: killed },
      "killed agent tool processes left by this runner's previous life",
    );
  const handler = new AgentJobHandler({
    workspaces,
    turns,
    // The runner's settings (the agent runner's config.yaml keys) shape each task before the
    // handler builds its masker from it, so a credential filled in from the runner's env is masked
    // like one the task brought.
    prepareTask: (task) => applyRunnerSettings(task, config, env),
    hostSecrets: [
      ...executor.hostSecrets,
      ...[config.gitTokenEnvVar, config.llmApiKeyEnvVar].flatMap((name) =>
        name && env[name] ? [env[name]] : [],
      ),
    ],
    upload: (jobId, name, contentType, content) =>
      uploadArtifact({
        serverUrls: connection.serverUrls,
        token: connection.token,
        jobId,
        name,
        contentType,
        content,
        retries: config.networkRetryCount,
      }),
    // A task's tests run in the worktree the runner made for it, which a sandbox may show.
    stepRunner: stepRunner.withExposure({ runnerMadeCwd: true }),
    scratchRoot: root,
    ...(config.agentFilesDir ? { filesDir: resolve(config.agentFilesDir) } : {}),
    // Its home and, on `runyard up`, the server's: no task works there, a platform admin's neither.
    folders: {
      roots: [workspaceDir, ...config.agentCwdRoots],
      own: [connection.home, ...(connection.sandbox?.hide ?? [])],
    },
    sandboxRefusal: (cwd) => executor.cwdRefusal(cwd),
  });
  // The agent runner's settings runyard accepts but does otherwise: said once, at start.
  for (const notice of runnerNotices(config, env)) connection.logger.warn(notice);
  return {
    handler,
    labels: [...modes, ...installed.map((name) => `agent:${name}`)],
    // The Jobs an earlier life left go once the first welcome named the install.
    ...(kubernetes ? { removeLeftovers: kubernetes.removeLeftovers } : {}),
  };
}

/**
 * Removes the chat folders untouched for `keepMs`; returns their paths. A chat folder is its
 * agent's to write, its own times included: one dated in the future (`touch -d 2100-01-01 .`)
 * would be kept for ever, so it is dated now instead, and goes `keepMs` later unless used.
 */
async function pruneChats(dir: string, keepMs: number): Promise<string[]> {
  const removed: string[] = [];
  for (const name of await readdir(dir).catch(() => [])) {
    const path = join(dir, name);
    const info = await lstat(path).catch(() => undefined);
    if (info?.isDirectory() && info.mtimeMs > Date.now()) {
      const now = new Date();
      await lutimes(path, now, now).catch(() => undefined);
      continue;
    }
    if (info?.isDirectory() && Date.now() - info.mtimeMs > keepMs) {
      await rm(path, { recursive: true, force: true });
      removed.push(path);
    }
  }
  return removed;
}

/** Where a runner connects, as who, and how it is offered. */
export interface RunnerConnection {
  serverUrls: string[];
  token: string;
  /** A server in this process (`runyard up`): linked without a socket (RunnerDaemonOptions.link). */
  link?: RunnerDaemonOptions["link"];
  id: string;
  logger: Logger;
  home: string;
  /**
   * Whether it is offered to every tenant: `true` (`--shared`) refuses to start where it cannot
   * sandbox each run; `if-isolated` (`runyard up`) is shared exactly when it sandboxes.
   */
  shared: boolean | "if-isolated";
  onConnected?: (serverUrl: string) => void;
  /** Sandbox steps even if the runner serves one principal, hiding these folders too (`runyard up`). */
  sandbox?: { always: boolean; hide: string[] };
}

/** A runner daemon on this machine and what keeps its steps from outliving it. */
export interface LocalRunner {
  daemon: RunnerDaemon;
  /** How its steps and agent turns are kept from each other and from it (RunnerInfo.isolation). */
  isolation: RunnerInfo["isolation"];
  /** Process groups an earlier life of this runner left running, killed before the first hello. */
  killedAtStart: number[];
  /** Graceful stop (see `RunnerDaemon.stop`), then releases the runner's state folder. */
  stop(graceMs: number): Promise<void>;
}

/** What sandboxed agent turns get on a runner whose Docker engine answers. */
function agentSandboxSettings(
  config: Config,
  engine: DockerEngine,
  connection: { owner: RunnerInstall; logger: Logger },
): AgentSandboxSettings {
  const forwarder = nativeHelperPath("egress-forward");
  if (config.agentSandboxNetwork) {
    connection.logger.warn(
      { network: config.agentSandboxNetwork },
      "sandboxed agents join this Docker network (RUNYARD_AGENT_SANDBOX_NETWORK): their egress is not held to their model endpoint",
    );
  }
  return {
    engine,
    forwarder: existsSync(forwarder) ? forwarder : undefined,
    ...(config.agentSandbox ? { defaultSandbox: { image: config.agentSandbox } } : {}),
    allow: config.agentSandboxAllow.map((entry) => {
      const at = entry.lastIndexOf(":");
      return { host: entry.slice(0, at).replace(/^\[|\]$/g, ""), port: Number(entry.slice(at + 1)) };
    }),
    ...(config.agentSandboxNetwork ? { openNetwork: config.agentSandboxNetwork } : {}),
    labels: () => connection.owner.labels(),
    images: config.agentSandboxImages,
    ceilings: sandboxCeilings(config),
  };
}

/**
 * The most a task's sandbox may ask for on this runner: the operator's settings, else what the
 * runner advertises (RUNYARD_MEMORY, RUNYARD_CPUS), else the machine's own; 4096 processes.
 */
export function sandboxCeilings(config: Config): SandboxCeilings {
  const memory = [config.agentSandboxMaxMemory, config.memory]
    .map((value) => (value === undefined ? undefined : parseMemorySize(value)))
    .find((bytes) => bytes !== undefined);
  return {
    memoryBytes: memory ?? totalmem(),
    cpus: config.agentSandboxMaxCpus ?? config.cpus ?? availableParallelism(),
    pids: config.agentSandboxMaxPids,
  };
}

/**
 * The labels a runner advertises: what its handlers back (`docker` with a reachable engine,
 * `agent:<name>` per installed agent, its modes) and the operator's own. A capability label the
 * operator gave that nothing here backs is dropped with a warning: advertised, it would draw
 * work the runner can only refuse.
 */
export function runnerLabels(
  given: readonly string[],
  backed: readonly string[],
  context: { logger: Logger; dockerHost: string | undefined },
): string[] {
  const labels: string[] = [];
  for (const label of given) {
    const why = capabilityMissing(label, backed, context.dockerHost);
    if (why === undefined) labels.push(label);
    else context.logger.warn({ label }, `dropped label ${label}: ${why}`);
  }
  return [...new Set([...labels, ...backed])];
}

/** Why a label of the operator's claims what this runner cannot do; undefined when it may keep it. */
function capabilityMissing(label: string, backed: readonly string[], dockerHost: string | undefined) {
  if (backed.includes(label)) return undefined;
  if (label === dockerRunnerLabel) {
    return `no Docker engine answers at ${dockerEndpoint(dockerHost).where}, so this runner can run neither bots nor \`executor: docker\` steps (start Docker or point DOCKER_HOST at it and restart the runner, or leave docker out of --labels / RUNYARD_LABELS)`;
  }
  if (label.startsWith("agent:")) {
    const name = label.slice("agent:".length);
    return (agentNames as readonly string[]).includes(name)
      ? `the ${name} agent is not installed here, so this runner cannot run its tasks (\`runyard agents install ${name}\` with this runner's --home, or put its CLI on PATH, and restart the runner; or leave ${label} out of --labels / RUNYARD_LABELS)`
      : `runyard knows no agent named ${name} (known: ${agentNames.join(", ")}); leave ${label} out of --labels / RUNYARD_LABELS`;
  }
  return undefined;
}

/** Where the runner makes its agents' mirrors, worktrees and chat folders. */
function agentWorkspaceRoot(config: Config, connection: { id: string; home: string }): string {
  return join(
    resolve(config.workspaceDir ?? join(connection.home, "workspaces")),
    encodeURIComponent(connection.id),
  );
}

/**
 * A runner daemon that runs its jobs as process groups on this machine, as `config` describes
 * it. Its state folder (`<home>/runners/<id>`) is locked to this process and holds the journals
 * that let its next start kill what this one leaves behind.
 */
export async function localRunnerDaemon(
  config: Config,
  env: Record<string, string | undefined>,
  connection: RunnerConnection,
): Promise<LocalRunner> {
  const stateDir = join(connection.home, "runners", encodeURIComponent(connection.id));
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const release = acquirePidLock(join(stateDir, "runner.lock"), `runner ${connection.id} (${stateDir})`);
  // What a start that fails part way must close again, so that the process exits with its error.
  const opened: Array<() => unknown> = [];
  try {
    const { guard, killed } = await OrphanGuard.open(stateDir, config.killGraceMs);
    opened.push(() => guard.close());
    if (killed.length > 0) {
      connection.logger.warn(
        { processGroups: killed },
        "killed steps left running by this runner's previous life",
      );
    }
    const workRoot = agentWorkspaceRoot(config, connection);
    // runyard's own folders: no step works there, a platform admin's neither, and a sandbox hides them.
    const ownFolders = [connection.home, workRoot, ...(connection.sandbox?.hide ?? [])];
    const sandbox = await runnerSandbox(
      config,
      {
        always: (connection.sandbox?.always ?? false) || connection.shared !== false,
        hide: ownFolders,
        workRoots: [join(workRoot, "worktrees"), join(workRoot, "chats"), join(workRoot, "runs")],
        stateDir,
      },
      connection.logger,
    );
    // Shared work goes only where each run is sandboxed: one tenant's steps would otherwise
    // read another's files and environment.
    const isolation: RunnerInfo["isolation"] = sandbox ? "sandbox" : "none";
    if (connection.shared === true && !sandbox) {
      const probe = await probeSandbox();
      throw new RunyardError(
        "RUNNER_CANNOT_ISOLATE",
        `a shared runner must isolate each run, but ${config.sandbox === "off" ? "RUNYARD_SANDBOX is off" : probe.isolation === "none" ? probe.problem : "it cannot sandbox its steps"}`,
        {
          hint: `${config.sandbox === "off" ? "Unset RUNYARD_SANDBOX" : probe.isolation === "none" ? probe.hint : "See the runner's log"}; or start the runner without --shared (RUNYARD_SHARED)`,
        },
      );
    }
    const shared =
      connection.shared === true || (connection.shared === "if-isolated" && sandbox !== undefined);
    const executor = createExecutor({
      baseEnv: env,
      watch: guard,
      killGraceMs: config.killGraceMs,
      ...(sandbox ? { sandbox, passEnv: config.stepPassEnv } : {}),
    });
    opened.push(() => executor.close());
    // Whose containers this runner makes, adopts and removes: the welcome names the install.
    const owner = new RunnerInstall(connection.id);
    const docker = await dockerSteps(env, owner, connection.logger);
    // Loaded only for `executor: kubernetes`: a process runner never loads the Kubernetes client.
    const kubernetes =
      config.executor === "kubernetes"
        ? await (await import("./kubernetes.js")).kubernetesSteps(config, env, {
            ...connection,
            owner,
          })
        : { labels: [] };
    const stepRunner = new LocalStepRunner(executor, {
      killGraceMs: config.killGraceMs,
      maskValues: [connection.token],
      ...(docker.containers ? { containers: docker.containers } : {}),
      ...(kubernetes.jobs ? { jobs: kubernetes.jobs } : {}),
      // A confined run's containers are checked here too.
      confineContainers: true,
      folders: { roots: config.stepCwdRoots, own: ownFolders },
    });
    // Sandboxed, each run's steps share a sandbox, a folder, /tmp and $HOME of the run's own;
    // unsandboxed they see the host's and work in the runner's working folder.
    const runs = sandbox
      ? new RunFolders(
          join(stateDir, "runs"),
          join(workRoot, "runs"),
          config.runTmpKeepSecs * 1000,
          {
            sandbox,
            launcher: executor.sandboxLauncher,
            pool: config.sandboxPool,
            home: env.HOME,
            idleMs: RUN_SANDBOX_IDLE_MS,
            onProblem: (problem) =>
              connection.logger.warn(
                { problem },
                "a run's sandbox could not be made: its steps get one each",
              ),
          },
          connection.logger,
        )
      : undefined;
    const leftRuns = (await runs?.cleanLeftovers()) ?? [];
    if (leftRuns.length > 0)
      connection.logger.warn(
        { folders: leftRuns },
        "removed run folders left by this runner's previous life",
      );
    runs?.fillPool();
    if (runs) opened.push(() => runs.close());
    const agents = await agentHandler(
      config,
      env,
      { ...connection, owner },
      stateDir,
      executor,
      stepRunner,
      docker.engine,
    );
    if (config.agentSandbox && !docker.engine) {
      throw new RunyardError(
        "INVALID_INPUT",
        `RUNYARD_AGENT_SANDBOX asks for agents in containers of ${config.agentSandbox}, and no Docker engine answers at ${dockerEndpoint(env.DOCKER_HOST).where}`,
        {
          hint: "Start Docker on this machine (or point DOCKER_HOST at it) and start the runner again, or unset RUNYARD_AGENT_SANDBOX (execution_mode: local-process) to run agents as processes.",
        },
      );
    }
    const bots = await runnerBots(env, stateDir, owner, connection.logger);
    // A tenant's steps on a shared runner get a network of their own (docs/security.md).
    const network = sandbox ? await runnerStepNetwork(config, shared, connection.logger) : undefined;
    if (network) opened.push(() => network.close());
    const stepJobs = network ? stepRunner.withNetwork(network.networkFor) : stepRunner;
    const journal = new JobJournal(stateDir);
    opened.push(() => journal.close());
    const daemon = new RunnerDaemon({
      serverUrls: connection.serverUrls,
      token: connection.token,
      ...(connection.link ? { link: connection.link } : {}),
      info: {
        id: connection.id,
        group: config.group,
        // Steps in containers and bots both need Docker: one `docker` label says so.
        labels: runnerLabels(
          config.labels,
          [...agents.labels, ...docker.labels, ...kubernetes.labels, ...bots.labels],
          {
            logger: connection.logger,
            dockerHost: env.DOCKER_HOST,
          },
        ),
        mode: config.mode,
        capacity: config.capacity,
        cpus: config.cpus ?? null,
        memory: config.memory ?? null,
        hostname: config.hostname,
        tenant_id: config.tenantId ?? null,
        version,
        shared,
        isolation,
      },
      // The step attempt takes runyard's own credentials out of the env and masks them.
      handlers: {
        step: new StepJobHandler(
          stepJobs,
          runs && {
            folders: runs,
            runnerWith: (place, ownFolder) =>
              stepJobs.withExposure({
                tmp: place.tmp,
                homeFolder: place.home,
                scratchDir: place.scratch,
                ...(place.sandbox ? { runSandbox: place.sandbox } : {}),
                ...(ownFolder ? { runnerMadeCwd: true } : {}),
              }),
          },
        ),
        agent: agents.handler,
        ...(bots.handler ? { bot: bots.handler } : {}),
      },
      ...(bots.missing ? { missing: { bot: bots.missing } } : {}),
      ...(runs ? { runs } : {}),
      bots,
      logger: connection.logger,
      acceptGraceMs: config.acceptGraceMs,
      // SIGTERM, the kill grace, SIGKILL, and the reaping after it.
      droppedSlotMs: config.killGraceMs + 10_000,
      journal,
      // Output of jobs whose server cannot take it for a while waits here past 32 MiB a job.
      spool: {
        dir: join(stateDir, "spool"),
        totalBytes: config.spoolMaxBytes,
        minFreeBytes: config.spoolMinFreeBytes,
      },
      ...(connection.onConnected ? { onConnected: connection.onConnected } : {}),
      onWelcome: async (installId) => {
        owner.learned(installId);
        await docker.removeLeftovers();
        await kubernetes.removeLeftovers?.();
        await agents.removeLeftovers?.();
      },
    });
    return {
      daemon,
      isolation,
      killedAtStart: killed,
      async stop(graceMs) {
        await daemon.stop(graceMs);
        await runs?.close();
        await network?.close();
        executor.close();
        if (sandbox?.options.pids) removeOwnFolder(sandbox.options.pids.hierarchy);
        guard.close();
        journal.close();
        release();
      },
    };
  } catch (error) {
    for (const close of opened.reverse()) {
      try {
        await close();
      } catch {
        // Closing what was opened is best effort: the start's own error is what the user sees.
      }
    }
    release();
    throw error;
  }
}
