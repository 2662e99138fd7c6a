import { existsSync } from "node:fs";
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { extractArchive } from "../../bots/archive.js";
import { dockerfileBases } from "../../bots/dockerfile-bases.js";
import { type BotBaseImages, simpleBuildContext } from "../../bots/simple-build.js";
import type { ArchiveLimits } from "../../bots/types.js";
import { isBotImageName, isImageId } from "../../core/container-policy.js";
import { RunyardError } from "../../core/errors.js";
import type { BotTask } from "../../core/jobs/bot.js";
import { managedLabel } from "../../exec/docker/container-spec.js";
import type { DockerEngine } from "../../exec/docker/docker-engine.js";
import { cleanGitEnv, runGit } from "../../workspace/git.js";
import { displayUrl } from "../../workspace/git-failure.js";

export interface BotImageDeps {
  engine: DockerEngine;
  baseImages: BotBaseImages;
  /** Where build contexts are made (and removed after the build). */
  workDir: string;
  archiveLimits?: ArchiveLimits;
  /** The runner's environment: git gets only what it needs of it (cleanGitEnv). */
  env: Record<string, string | undefined>;
  /**
   * Whether a git source may be a path or file:// URL on the runner's own disk (off unless the
   * operator says RUNYARD_BOT_GIT_LOCAL=1): else any bot could build from the repositories the
   * runner keeps for others (its workspace mirrors) and print them.
   */
  allowLocalGit?: boolean;
}

/**
 * Git's environment for a bot's clone: anonymous. Not the runner's HOME (its ~/.gitconfig may
 * carry an http.extraHeader token or url rewrites), not its ssh agent nor its keys: a bot's
 * source is the user's, reached with nothing of the runner's.
 */
export function anonymousGitEnv(
  env: Record<string, string | undefined>,
  home: string,
): Record<string, string> {
  const { SSH_AUTH_SOCK: _agent, ...clean } = cleanGitEnv(env);
  return {
    ...clean,
    HOME: home,
    XDG_CONFIG_HOME: home,
    GIT_CONFIG_NOSYSTEM: "1",
    GIT_SSH_COMMAND:
      "ssh -o BatchMode=yes -F /dev/null -o IdentitiesOnly=yes -o IdentityFile=/dev/null -o IdentityAgent=none",
  };
}

/** A git URL git reads from the local disk: file://, or a path (not a URL, not ssh's host:path). */
export function isLocalGitUrl(url: string): boolean {
  if (/^file:/i.test(url)) return true;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) return false;
  return !/^[^/]+:/.test(url);
}

/** The tag a built bot image gets: one per bot, so a new build replaces the last one's tag. */
export function botImageTag(botId: string): string {
  return `runyard-bot-${botId.toLowerCase().replace(/[^a-z0-9_.-]/g, "-")}:latest`;
}

/**
 * Makes the image a bot runs (the avtomatika-bot modes): `simple` builds runyard's Dockerfile
 * around the user's files, `custom` builds the user's Dockerfile from an archive (checked before a
 * byte is extracted) or a shallow git clone (no submodules; git's transports limited to https,
 * http, ssh, git and file, so never `ext::`), `image` pulls the reference unless it is here already
 * (as `docker run` does). Progress goes to `onLine`; the image's name is the answer.
 */
export async function prepareBotImage(
  deps: BotImageDeps,
  task: BotTask,
  onLine: (line: string) => void,
  signal: AbortSignal,
): Promise<string> {
  const { source } = task;
  if (source.mode === "image") {
    // Docker reads hex digits as an image id's prefix: an unlabelled layer of another user's
    // built bot (its files, before the label step) would run under a name nobody gave it.
    if (isImageId(source.image)) {
      throw new RunyardError("INVALID_INPUT", `image ${source.image} is an image id, not a reference`, {
        hint: "Give the image's name and tag (e.g. ghcr.io/user/bot:v1).",
      });
    }
    const local = await localImage(deps.engine, source.image);
    // A built bot's image holds its owner's code: another bot (another user's) never runs it,
    // whatever name (tag, id, digest) it is given by.
    const builtFor = local?.labels["runyard.bot"];
    if (builtFor !== undefined && builtFor !== task.bot_id) {
      throw new RunyardError(
        "BOT_IMAGE_NOT_FOUND",
        `image ${source.image} is not in any registry this runner pulls from`,
        {
          hint: "Push the bot's image to a registry and give its reference (e.g. ghcr.io/user/bot:v1), or start it in simple or custom mode.",
        },
      );
    }
    // An image of a registry is pulled every time, with the starter's own credentials: one pulled
    // privately for another user must not run for someone the registry would refuse. So is one
    // of Docker Hub that someone pulled here with credentials.
    if (!local || fromRegistry(source.image) || local.credentialMarks) {
      await deps.engine.pull(source.image, {
        ...(source.registry_auth ? { auth: source.registry_auth } : {}),
        onProgress: onLine,
      });
    } else {
      onLine(`image ${source.image} is present on this runner; not pulled`);
    }
    return source.image;
  }
  const dir = await mkdtemp(join(deps.workDir, "bot-build-"));
  try {
    const context = join(dir, "context");
    if (source.mode === "simple") {
      simpleBuildContext(
        {
          files: source.files,
          entrypoint: source.entrypoint,
          requirements: source.requirements,
          baseImages: deps.baseImages,
        },
        await mkdirOf(context),
      );
    } else if (source.archive !== undefined) {
      const archive = join(dir, "upload");
      await writeFile(archive, Buffer.from(source.archive, "base64"), { mode: 0o600 });
      await extractArchive(archive, context, deps.archiveLimits);
      await readableByAll(context);
    } else if (source.git !== undefined) {
      await cloneShallow(deps, source.git, context, await mkdirOf(join(dir, "home")), onLine, signal);
    } else {
      throw new RunyardError("INVALID_INPUT", "a custom bot needs an archive or a git URL");
    }
    if (!existsSync(join(context, "Dockerfile"))) {
      throw new RunyardError("BOT_BUILD_FAILED", "the custom bot's files have no Dockerfile at their top", {
        hint: "Put a Dockerfile in the folder's (or repository's) top level; runyard builds it as it is.",
      });
    }
    if (source.mode === "custom")
      await checkBases(deps.engine, task.bot_id, join(context, "Dockerfile"), onLine);
    const tag = botImageTag(task.bot_id);
    // The build's RUN steps get the network the bot gets, not the engine's default.
    await deps.engine.build(
      context,
      tag,
      onLine,
      { [managedLabel]: "1", "runyard.bot": task.bot_id },
      task.network,
    );
    return tag;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * A user's Dockerfile builds only on registry images or the runner's own: never an image id or
 * a bot's image (another user's code, taken from local images, printable in the build log). A
 * registry base is pulled first without credentials, so one another user pulled privately (an
 * image-mode bot's, a private Docker Hub repository's) cannot serve a build the registry would
 * refuse. A base whose variable has no default cannot be checked, so is refused.
 */
async function checkBases(
  engine: DockerEngine,
  botId: string,
  dockerfile: string,
  onLine: (line: string) => void,
): Promise<void> {
  const { images, unresolved } = dockerfileBases(await readFile(dockerfile, "utf8"));
  const refuse = (message: string) => {
    throw new RunyardError("BOT_BUILD_FAILED", message, {
      hint: "Build FROM an image of a registry (e.g. python:3.12-slim) or one the runner's operator provides, written out by name and tag.",
    });
  };
  for (const raw of unresolved)
    refuse(`the Dockerfile's base image ${raw} uses a variable with no ARG default`);
  for (const image of images) {
    if (isImageId(image))
      refuse(`the Dockerfile builds on ${image}, an image id: name the image and its tag`);
    if (isBotImageName(image)) refuse(`the Dockerfile builds on ${image}, a bot's image`);
    const local = await localImage(engine, image);
    const builtFor = local?.labels["runyard.bot"];
    if (builtFor !== undefined && builtFor !== botId) {
      refuse(`the Dockerfile builds on ${image}, which is not in any registry this runner pulls from`);
    }
    if (fromRegistry(image) || local?.credentialMarks) {
      try {
        await engine.pull(image, { onProgress: onLine });
      } catch (error) {
        refuse(
          `the Dockerfile builds on ${image}, which its registry does not give without credentials (${error instanceof Error ? error.message : String(error)}); a custom bot builds on public images`,
        );
      }
    }
  }
}

/**
 * Extraction writes owner-only modes (nothing of an upload is ever setuid or group-writable);
 * Docker's COPY keeps modes, and the bot runs as nobody, so the build context is opened to read:
 * folders 0755, files 0644, or 0755 where the archive made them executable. It sits in a 0700
 * folder of the runner's meanwhile.
 */
async function readableByAll(dir: string): Promise<void> {
  await chmod(dir, 0o755);
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await readableByAll(path);
    else if (entry.isFile()) await chmod(path, (await stat(path)).mode & 0o100 ? 0o755 : 0o644);
  }
}

/**
 * Whether a reference names a registry host (`ghcr.io/user/bot`, `127.0.0.1:5000/bot`,
 * `localhost/bot`), as Docker reads it: the first part has a dot or a port, or is localhost.
 */
export function fromRegistry(ref: string): boolean {
  const first = ref.split("/")[0] ?? "";
  return ref.includes("/") && (first.includes(".") || first.includes(":") || first === "localhost");
}

async function mkdirOf(path: string): Promise<string> {
  await mkdir(path, { mode: 0o700 });
  return path;
}

/** The image of that reference on this runner's engine; undefined when absent, or the engine would not say. */
function localImage(engine: DockerEngine, ref: string) {
  return engine.image(ref).catch(() => undefined);
}

async function cloneShallow(
  deps: BotImageDeps,
  git: { url: string; ref?: string | undefined },
  dest: string,
  home: string,
  onLine: (line: string) => void,
  signal: AbortSignal,
): Promise<void> {
  if (isLocalGitUrl(git.url) && !deps.allowLocalGit) {
    throw new RunyardError("BOT_BUILD_FAILED", `${displayUrl(git.url)} is on the runner's own disk`, {
      hint: "Give the repository's https, ssh or git URL; an operator who wants local repositories cloned sets RUNYARD_BOT_GIT_LOCAL=1 on the runner.",
    });
  }
  onLine(`cloning ${displayUrl(git.url)}${git.ref ? ` at ${git.ref}` : ""} (shallow, no submodules)`);
  const args = [
    "clone",
    "--depth=1",
    "--no-recurse-submodules",
    "--single-branch",
    ...(git.ref ? ["--branch", git.ref] : []),
    "--",
    git.url,
    dest,
  ];
  const result = await runGit(anonymousGitEnv(deps.env, home), args, { signal });
  if (result.code !== 0) {
    throw new RunyardError(
      "BOT_BUILD_FAILED",
      `cloning ${displayUrl(git.url)} failed: ${result.stderr.trim()}`,
      {
        hint: "Check the URL and branch, and that this runner can reach the repository (https, ssh, git or file URLs only).",
      },
    );
  }
}
