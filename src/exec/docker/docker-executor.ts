import { randomBytes } from "node:crypto";
import { type BigIntStats, chmodSync, mkdirSync, mkdtempSync, rmSync, type Stats, statSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import {
  type ContainerRefusal,
  memberContainerRefusal,
  memberImageLabelsRefusal,
} from "../../core/container-policy.js";
import type { StepContainer } from "../../core/step-attempt.js";
import { nativeHelperPath } from "../native-helpers.js";
import { OutputFileWatch } from "../output-file.js";
import { installLabel, type RunnerInstall, runnerLabel } from "../runner-install.js";
import type {
  AttemptCommand,
  AttemptProblem,
  AttemptSetup,
  ExecAttempt,
  ExecResult,
  Executor,
  OutputFileContents,
} from "../types.js";
import { RunningContainers } from "./container-run.js";
import { type ContainerMount, containerUser, hardenedContainer, managedLabel } from "./container-spec.js";
import type { DockerEngine } from "./docker-engine.js";

/** The label of a step's container; with `runyard.run` it says which attempt a container served. */
export const stepLabel = "runyard.step";
export const runLabel = "runyard.run";
export const hostLabel = "runyard.host";

export interface DockerExecutorOptions {
  engine: DockerEngine;
  container: StepContainer;
  /** Labels that say whose the containers are: run, step, host, and the runner's own. */
  labels: Record<string, string>;
  /** Where the attempt's scratch folder goes; the OS temp folder by default. */
  tmpDir?: string;
  /**
   * A member's run on a runner: the container is held to a member's rules (network none or host,
   * an image by name and not one built for a bot; core/container-policy.ts), checked before it
   * is created.
   */
  confined?: boolean;
}

/**
 * Runs one attempt's commands in hardened containers of the host's image (container-spec.ts: no
 * capabilities, no privilege gain, non-root, memory, CPU and pids limits, read-only root), one per
 * command. The cwd and scratch folder (files, `$RUNYARD_OUTPUT`) are bind-mounted at their host
 * paths, so the step's paths mean the same on both sides.
 *
 * One cheap executor per attempt (its image and labels); all state is in Docker and the scratch
 * folder. None of the runner's env enters the container: the image brings PATH, the step its variables.
 */
export class DockerExecutor implements Executor {
  /** The runner's env never enters the container, so no value of it needs masking here. */
  readonly hostSecrets: readonly string[] = [];
  /**
   * Every cmd.run line goes through the image's shell: a plain command that does not exist in
   * the image cannot be told from one that ran and failed (docker-init reports both as an exit).
   */
  readonly plainCommands = false;
  private readonly attempts = new Set<DockerAttempt>();

  constructor(private readonly options: DockerExecutorOptions) {}

  async startAttempt(setup: AttemptSetup): Promise<ExecAttempt | AttemptProblem> {
    const { engine, container, confined } = this.options;
    const host = this.options.labels[hostLabel] ?? "?";
    const refused = confined ? memberContainerRefusal(host, container) : undefined;
    if (refused) return notAllowed(refused);
    const image = await inspectImage(engine, container.image);
    if ("problem" in image) return image;
    const labelled = confined ? memberImageLabelsRefusal(host, container.image, image.labels) : undefined;
    if (labelled) return notAllowed(labelled);
    let cwd: string | undefined;
    let folder: BigIntStats | undefined;
    if (setup.cwd !== undefined) {
      cwd = resolve(setup.cwd);
      folder = statSync(cwd, { bigint: true, throwIfNoEntry: false });
      // Docker would refuse a missing bind source with a message about mounts; say it in step terms.
      if (!folder?.isDirectory()) {
        return { problem: `the step's cwd ${cwd} is not a folder on the runner` };
      }
      // The container's user is the folder's owner: the folder the runner held, not one a link
      // swapped in since names.
      if (setup.cwdIdentity !== undefined && `${folder.dev}:${folder.ino}` !== setup.cwdIdentity) {
        return {
          problem: `the step's cwd ${cwd} was swapped for another folder after the runner checked it; nothing ran`,
          hint: "Let no other step move or replace the step's cwd while it starts.",
        };
      }
    }
    const user = containerUser(folder);
    const check = setup.cwdIdentity ? cwdCheck(setup.cwdIdentity, user) : undefined;
    if (check && "problem" in check) return check;
    let scratch: string;
    try {
      scratch = scratchFolder(this.options.tmpDir ?? tmpdir());
    } catch (error) {
      return { problem: `cannot create the scratch folder: ${(error as Error).message}` };
    }
    const files: Record<string, string> = {};
    try {
      for (const [name, content] of Object.entries(setup.files ?? {})) {
        const path = join(scratch, name);
        // Readable by the container's user, who is not the runner's; the folder above is private.
        await writeFile(path, content, { flag: "wx", mode: 0o644 });
        files[name] = path;
      }
    } catch (error) {
      removeScratch(scratch);
      return { problem: `cannot write the step's files: ${(error as Error).message}` };
    }
    const env: Record<string, string> = {
      // Tools that write under $HOME have somewhere to: the user has no home in most images.
      HOME: "/tmp",
      ...(cwd ? { PWD: cwd } : {}),
      ...setup.env,
      RUNYARD_OUTPUT: join(scratch, "output"),
    };
    const attempt = new DockerAttempt(this.options, setup, env, files, scratch, cwd, check, user, () =>
      this.attempts.delete(attempt),
    );
    this.attempts.add(attempt);
    return attempt;
  }

  /** Removes the containers of attempts still running (the runner is stopping). */
  close(): void {
    for (const attempt of this.attempts) void attempt.dispose();
  }
}

function notAllowed(refusal: ContainerRefusal): AttemptProblem {
  return {
    problem: `${refusal.message} (refused by the runner)`,
    hint: refusal.hint,
    code: "STEP_CONTAINER_NOT_ALLOWED",
  };
}

/**
 * The image's labels; it must be on the runner already: runyard does not pull for steps (see
 * docs/workflows.md).
 */
async function inspectImage(
  engine: DockerEngine,
  image: string,
): Promise<{ labels: Record<string, string> } | { problem: string; hint: string }> {
  try {
    const info = await engine.image(image);
    if (!info) {
      return {
        problem: `image ${image} is not on this runner's Docker engine`,
        hint: `Make it available on the runner: \`docker pull ${image}\`, or \`docker build -t ${image} .\` where its Dockerfile is; runyard does not pull images for steps.`,
      };
    }
    if (info.credentialMarks) {
      return {
        problem: `image ${image} was pulled on this runner with a bot's registry credentials, so a step may not run it`,
        hint: `A step runs only images the runner's operator put on its engine. If the image is public, the operator can remove the mark: \`docker rmi ${info.credentialMarks.join(" ")}\`.`,
      };
    }
    return { labels: info.labels };
  } catch (error) {
    return {
      problem: `cannot reach the Docker engine to run the step in ${image}: ${(error as Error).message}`,
      hint: "Check that Docker runs on the runner and that the runner may use its socket (/var/run/docker.sock).",
    };
  }
}

/**
 * The attempt's scratch folder: a private folder (0700) of the runner holding one world-writable
 * folder, the one mounted into the container. The container's user is not the runner's, so it
 * needs the write bit to create `$RUNYARD_OUTPUT`; no other user of the host can reach it
 * through the private parent, and the container sees nothing but it.
 */
function scratchFolder(tmp: string): string {
  const parent = mkdtempSync(join(tmp, "runyard-docker-"));
  const folder = join(parent, "attempt");
  try {
    mkdirSync(folder);
    chmodSync(folder, 0o777); // after: the umask would take the write bits off at mkdir
    return folder;
  } catch (error) {
    rmSync(parent, { recursive: true, force: true });
    throw error;
  }
}

function removeScratch(scratch: string): void {
  try {
    rmSync(join(scratch, ".."), { recursive: true, force: true });
  } catch {
    // A file the step made that the runner may not remove; the OS temp folder is cleaned some day.
  }
}

class DockerAttempt implements ExecAttempt {
  private readonly outputWatch: OutputFileWatch;
  private readonly running: RunningContainers;
  private disposed = false;

  constructor(
    private readonly options: DockerExecutorOptions,
    private readonly setup: AttemptSetup,
    readonly env: Record<string, string>,
    readonly files: Record<string, string>,
    private readonly scratch: string,
    private readonly cwd: string | undefined,
    private readonly check: CwdCheck | undefined,
    private readonly user: string,
    private readonly onDisposed: () => void,
  ) {
    this.outputWatch = new OutputFileWatch(env.RUNYARD_OUTPUT!);
    this.running = new RunningContainers(options.engine);
  }

  async run(command: AttemptCommand): Promise<ExecResult> {
    const { container } = this.options;
    const mounts: ContainerMount[] = [{ source: this.scratch, target: this.scratch }];
    if (this.cwd) mounts.push({ source: this.cwd, target: this.cwd });
    if (this.check) mounts.push(this.check.mount);
    const spec = hardenedContainer({
      image: container.image,
      name: `runyard-step-${randomBytes(6).toString("hex")}`,
      env: this.env,
      cmd: this.check ? [this.check.mount.target, this.check.identity, ...command.argv] : command.argv,
      limits: { memoryBytes: container.memory_bytes, cpus: container.cpus, pids: container.pids },
      network: container.network,
      user: this.user,
      ownerLabels: this.options.labels,
      mounts,
      ...(this.cwd ? { workingDir: this.cwd } : {}),
    });
    // An image's HEALTHCHECK is a second command that starts in the cwd without the checker:
    // a step's container runs its command and nothing else.
    return this.running.run(
      { ...spec, Healthcheck: { Test: ["NONE"] } },
      {
        onOutput: command.onOutput,
        signal: this.setup.signal,
        timeoutMs: command.timeoutMs,
        killGraceMs: this.setup.limits.killGraceMs,
        oomHint: "raise the host's memory",
      },
    );
  }

  outputFileChanged(): string | undefined {
    return this.outputWatch.changed();
  }

  readOutputFile(): Promise<OutputFileContents> {
    return this.outputWatch.read();
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.running.removeAll();
    removeScratch(this.scratch);
    this.onDisposed();
  }
}

/**
 * Removes the step containers a previous life of this runner left (it crashed, or was killed,
 * with steps running): they carry its runner label and its install's. Bots' containers are left
 * alone, and so is every container of another install that shares the engine. Those of this
 * runner id that carry no install label (made before containers named their install) are left
 * too, and listed: they may be another install's.
 */
export async function removeLeftoverStepContainers(
  engine: DockerEngine,
  owner: RunnerInstall,
): Promise<{ removed: string[]; unlabeled: string[] }> {
  const list = await engine.listLabelled([
    `${managedLabel}=1`,
    `${runnerLabel}=${owner.runnerId}`,
    stepLabel,
  ]);
  const mine = list.filter((container) => owner.owns(container.Labels));
  await Promise.all(mine.map((container) => engine.remove(container.Id)));
  return {
    removed: mine.map((container) => container.Id),
    unlabeled: list
      .filter((container) => container.Labels[installLabel] === undefined && !owner.owns(container.Labels))
      .map((container) => container.Id),
  };
}

/** The static checker (native/cwd-check.c) mounted into a step's container, and the identity it wants. */
interface CwdCheck {
  mount: ContainerMount & { readOnly: true };
  identity: string;
}

/**
 * Where the checker is in every step's container: a path no image has of its own, one part deep.
 * The engine mounts the shallowest targets first, so the checker's mount is made before any cwd's
 * (whose parent a step could swap is at least two deep): an image's link at this path leads the
 * mount into the image's own files, never through the cwd into a folder of the host.
 */
const checkerInContainer = "/.runyard-cwd-check";

/**
 * The step's cwd is mounted by path: the command runs first through the checker, which runs it
 * only in the folder the runner judged (held-cwd.ts). Without the checker there is no step.
 */
function cwdCheck(identity: string, user: string): CwdCheck | { problem: string; hint: string } {
  const checker = nativeHelperPath("cwd-check");
  const info = statSync(checker, { throwIfNoEntry: false });
  if (!info) {
    return {
      problem: `cannot check the step's cwd inside its container: ${checker} is missing`,
      hint: "npm install compiles it with the machine's C compiler and static C library (Debian: build-essential); install them and run npm rebuild runyard, or give the step no cwd.",
    };
  }
  if (!mayRun(info, user)) {
    return {
      problem: `cannot check the step's cwd inside its container: its user ${user} may not run ${checker} (mode ${(info.mode & 0o777).toString(8)})`,
      hint: `Make it executable by all: chmod 755 ${checker} (npm install under a strict umask left it so; npm rebuild runyard builds it executable by all).`,
    };
  }
  return { mount: { source: checker, target: checkerInContainer, readOnly: true }, identity };
}

/** Whether `user` (`uid:gid`, no supplementary groups in a step's container) may execute the file `info` describes. */
function mayRun(info: Stats, user: string): boolean {
  const [uid, gid] = user.split(":").map(Number);
  if (info.uid === uid) return (info.mode & 0o100) !== 0;
  if (info.gid === gid) return (info.mode & 0o010) !== 0;
  return (info.mode & 0o001) !== 0;
}
