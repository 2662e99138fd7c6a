import { existsSync, readFileSync } from "node:fs";
import { nativeHelperPath } from "../native-helpers.js";
import type { ProcessLauncher, SandboxToEnter } from "../types.js";
import type { Sandbox, SandboxExposure } from "./sandbox.js";
import {
  holderCommand,
  holderLives,
  namespacesOf,
  type StartedHolder,
  startHolder,
} from "./sandbox-holder.js";

/**
 * The sandbox bwrap makes once per runner with the system folders and none of a run's: each
 * run's sandbox is a clone of it (native/sandbox-clone.c, the fork-server's 'K'), a few dozen
 * syscalls rather than bwrap's start. A clone has a root, /dev, /proc, /run and user namespace of
 * its own, so no run sees another's files or mount points; the template only lends what is
 * read-only (docs/security.md, "What the sandbox costs a step").
 */
export class SandboxTemplate {
  private failed = false;

  private constructor(
    /** The template's holder, whose namespaces a clone starts from. */
    readonly holder: SandboxToEnter,
    /** The steps that make a clone's root from the template's (its folders, /dev, /proc, /run). */
    private readonly base: string[],
    private readonly started: StartedHolder,
    private readonly onFallback: (reason: string) => void,
  ) {}

  /** Makes the template through the fork-server, or says why not. */
  static async make(
    launcher: ProcessLauncher,
    sandbox: Sandbox,
    onFallback: (reason: string) => void,
  ): Promise<SandboxTemplate | { problem: string }> {
    const holderProgram = nativeHelperPath("sandbox-holder");
    if (!existsSync(holderProgram)) return { problem: "native/sandbox-holder was not built" };
    const { argv, files } = holderCommand();
    const [bwrap, ...rest] = sandbox.templateCommand(argv, files);
    if (!rest.includes("--disable-userns"))
      return { problem: "this bubblewrap cannot keep a sandbox from nesting user namespaces" };
    // Dies with the fork-server that made it: clones are made through that fork-server alone, and
    // one killed outright (or by a SIGTERM of every runyard process at once) would otherwise leave
    // the template, whose group the runner may not have journaled yet, for good. Its holder runs
    // no step, so bwrap's SIGKILL takes no step's grace away (unlike a step's own sandbox).
    const started = await startHolder(launcher, "bubblewrap", (request) => ({
      ...request,
      argv: [bwrap!, "--info-fd", "1", "--die-with-parent", ...rest],
    }));
    if ("problem" in started) return started;
    const namespaces = namespacesOf(started.holder);
    if (!namespaces) {
      started.stop.abort();
      return { problem: "the template ended as it was made" };
    }
    const shownHolder = files.map(([, inside]) => inside);
    const base = [...templateSteps(rest, shownHolder), ...procCovers(started.holder), `H${holderProgram}`];
    return new SandboxTemplate({ pid: started.holder, namespaces }, base, started, onFallback);
  }

  /** Whether clones may be made from it: alive, and none refused yet. */
  usable(): boolean {
    return !this.failed && this.alive();
  }

  /** Whether a clone was refused: then no clone is tried again. */
  get refusing(): boolean {
    return this.failed;
  }

  private alive(): boolean {
    return holderLives(this.holder);
  }

  /** The steps of a clone showing `exposure` (its network the host's): the template's, then the run's. */
  steps(sandbox: Sandbox, exposure: SandboxExposure): string[] {
    const steps = [...this.base];
    const args = sandbox.runMounts(exposure);
    for (let index = 0; index < args.length; index++) {
      const [flag, first, second] = [args[index], args[index + 1]!, args[index + 2]!];
      if (flag === "--bind" || flag === "--ro-bind") {
        steps.push(`${flag === "--bind" ? "B" : "R"}${first}`, second);
        index += 2;
      } else if (flag === "--tmpfs") {
        steps.push(`M${first}`);
        index += 1;
      }
    }
    return steps;
  }

  /** A clone was refused where bwrap is not: said once, and runs' sandboxes are made by bwrap from now on. */
  refused(problem: string): void {
    if (this.failed) return;
    this.failed = true;
    this.onFallback(problem);
  }

  close(): Promise<unknown> {
    this.started.stop.abort();
    return this.started.ended;
  }
}

/**
 * The template of each runner's sandbox and fork-server, made at its first run's sandbox, or why
 * there is none (then said once through the sandbox's `clones.onFallback`). Undefined where the
 * runner does not clone.
 */
export async function templateFor(
  launcher: ProcessLauncher,
  sandbox: Sandbox,
): Promise<SandboxTemplate | undefined> {
  const clones = sandbox.options.clones;
  if (!clones) return undefined;
  const byLauncher = templates.get(sandbox) ?? new WeakMap();
  templates.set(sandbox, byLauncher);
  let made = byLauncher.get(launcher);
  const previous = made && (await made);
  // A template whose holder has gone (the fork-server stopped its group) is made again.
  if (previous instanceof SandboxTemplate && !previous.usable() && !previous.refusing) {
    void previous.close();
    made = undefined;
  }
  if (!made) {
    made = SandboxTemplate.make(launcher, sandbox, clones.onFallback).then((template) => {
      if (template instanceof SandboxTemplate) return template;
      clones.onFallback(template.problem);
      return undefined;
    });
    byLauncher.set(launcher, made);
  }
  const template = await made;
  return template?.usable() ? template : undefined;
}

/** Ends the template of `sandbox` made through `launcher`, if any (a runner's runs have all ended). */
export async function closeTemplate(launcher: ProcessLauncher, sandbox: Sandbox): Promise<void> {
  const made = templates.get(sandbox)?.get(launcher);
  templates.get(sandbox)?.delete(launcher);
  await (await made)?.close();
}

const templates = new WeakMap<Sandbox, WeakMap<ProcessLauncher, Promise<SandboxTemplate | undefined>>>();

/**
 * The clone steps of the template's own bwrap arguments: its read-only folders (those inside
 * another come with it), links, /dev, /proc, tmpfs (/run); the rest (namespaces, uid) is joined.
 */
function templateSteps(args: readonly string[], holder: readonly string[]): string[] {
  const steps: string[] = [];
  const folders: string[] = [];
  for (let index = 0; index < args.length && args[index] !== "--"; index++) {
    const flag = args[index];
    if (flag === "--ro-bind" || flag === "--bind") {
      const at = args[index + 2]!;
      // Not the holder's own file: a clone holds itself or execs it ('H'), and its /run stays empty.
      if (!folders.some((folder) => at.startsWith(`${folder}/`)) && !holder.includes(at)) {
        folders.push(at);
        steps.push(`T${at}`);
      }
      index += 2;
    } else if (flag === "--symlink") {
      steps.push(`L${args[index + 1]}`, args[index + 2]!);
      index += 2;
    } else if (flag === "--dev" || flag === "--proc" || flag === "--tmpfs") {
      steps.push(`${flag === "--dev" ? "D" : flag === "--proc" ? "P" : "N"}${args[index + 1]}`);
      index += 1;
    } else if (flag === "--uid" || flag === "--gid") {
      index += 1;
    } else if (flag === "--ro-bind-try") {
      index += 2; // /proc's covers (proc-covers.ts): in the template's mountinfo, so in procCovers
    }
  }
  return steps;
}

/**
 * bwrap's read-only covers in the template's /proc (those it found writable, and the sandbox's
 * own: proc-covers.ts), and /proc/sys and /proc/sysrq-trigger whatever bwrap found: its check
 * skips /proc/sys, whose folder no one may write, though under a root runner a step could write
 * the files in it.
 */
function procCovers(holder: number): string[] {
  const covers = new Set(["/proc/sys", "/proc/sysrq-trigger"]);
  for (const line of readFileSync(`/proc/${holder}/mountinfo`, "utf8").split("\n")) {
    // mountinfo escapes a space, tab, newline and backslash in a path as \ and three octal digits.
    const point = line
      .split(" ")[4]
      ?.replace(/\\([0-7]{3})/g, (_, code: string) => String.fromCharCode(Number.parseInt(code, 8)));
    if (point?.startsWith("/proc/")) covers.add(point);
  }
  return [...covers].map((cover) => `C${cover}`);
}
