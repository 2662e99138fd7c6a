import { execFile } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { DockerEngine } from "../../src/exec/docker/docker-engine.js";
import { nodeRuntimeBaseImage } from "../helpers/base-images.js";
import { repoRoot } from "../helpers/cli.js";
import { testLabel, testRunLabel } from "../helpers/docker.js";

const exec = promisify(execFile);

/**
 * A docker CLI that builds with BuildKit, which builds only the stages an image needs (the
 * legacy builder runs every stage, and the Dockerfile's build stage needs a registry). Debian's
 * docker.io 20.10 has BuildKit inside the CLI; from 23 on it is the buildx plugin.
 */
export async function buildKitDocker(): Promise<string | undefined> {
  for (const docker of ["docker", "/usr/bin/docker"]) {
    const version = await exec(docker, ["version", "--format", "{{.Client.Version}}"]).catch(() => undefined);
    if (!version) continue;
    const major = Number.parseInt(version.stdout.trim(), 10);
    if (major < 23) return docker;
    if (
      await exec(docker, ["buildx", "version"]).then(
        () => true,
        () => false,
      )
    )
      return docker;
  }
  return undefined;
}

/** The ids of the engine's BuildKit cache records. */
export async function buildCacheIds(): Promise<Set<string>> {
  const usage = (await new DockerEngine().docker.df()) as { BuildCache?: { ID: string }[] | null };
  return new Set((usage.BuildCache ?? []).map((record) => record.ID));
}

/**
 * Prunes the BuildKit cache records made since `before` was listed. BuildKit keeps a build's
 * context and steps after its image is gone, a GB a run of the compose test, and the engine
 * outlives the run. One id a call (the engine takes one value a filter); a record that a newer
 * one still held goes on the next pass.
 */
export async function pruneBuildCacheSince(before: Set<string>): Promise<void> {
  const { modem } = new DockerEngine().docker;
  // dockerode's pruneBuilder sends no filters: the engine's API is asked directly.
  const prune = (id: string) =>
    new Promise<void>((resolve, reject) => {
      // A path ending in `?` takes `options` as its query, as dockerode's own calls do.
      const request = {
        path: "/build/prune?",
        method: "POST",
        options: { filters: { id: [id] } },
        statusCodes: { 200: true },
      };
      modem.dial(request, (error: unknown) => (error ? reject(error) : resolve()));
    });
  for (let pass = 0; pass < 5; pass++) {
    const made = [...(await buildCacheIds())].filter((id) => !before.has(id));
    if (made.length === 0) return;
    for (const id of made) await prune(id);
  }
}

/** `docker compose` (v2) or Debian's `docker-compose` (v1): the argv prefix of whichever runs. */
export async function composeCommand(docker: string): Promise<string[] | undefined> {
  for (const argv of [[docker, "compose"], ["docker-compose"]]) {
    const works = await exec(argv[0]!, [...argv.slice(1), "version"]).then(
      () => true,
      () => false,
    );
    if (works) return argv;
  }
  return undefined;
}

/**
 * runyard's image, built by the repository's Dockerfile from the repository as context, with its
 * two stages replaced by images made here, because nothing can be pulled or compiled in a
 * container on runyard's machines: the runtime stage by the host's node, bash and tini
 * (base-images.ts), the build stage by an image holding this checkout's already built package
 * (dist/, the native helpers, the production dependencies) at /opt/runyard, laid out as the build
 * stage lays it out. Both images carry the test run's label.
 */
export async function buildRunyardImage(
  docker: string,
  run: string,
  tag: string,
): Promise<{ tag: string; buildMs: number }> {
  const started = Date.now();
  const runtime = await nodeRuntimeBaseImage();
  const app = `${tag}-app`;
  await buildPrebuiltApp(docker, run, app);
  await dockerBuild(docker, repoRoot, tag, run, { APP_STAGE: app, RUNTIME_STAGE: runtime });
  return { tag, buildMs: Date.now() - started };
}

async function buildPrebuiltApp(docker: string, run: string, tag: string): Promise<void> {
  const context = mkdtempSync(join(tmpdir(), "runyard-app-"));
  try {
    const app = join(context, "opt/runyard");
    mkdirSync(join(app, "native/build"), { recursive: true });
    for (const entry of ["package.json", "bin", "dist", "examples"]) {
      cpSync(join(repoRoot, entry), join(app, entry), { recursive: true });
    }
    for (const helper of ["fork-server", "cwd-check", "egress-forward"])
      cpSync(join(repoRoot, "native/build", helper), join(app, "native/build", helper));
    for (const dependency of productionDependencies()) {
      cpSync(join(repoRoot, dependency), join(app, dependency), { recursive: true, dereference: true });
    }
    writeFileSync(join(context, "Dockerfile"), "FROM scratch\nCOPY opt/ /opt/\n");
    await dockerBuild(docker, context, tag, run, {});
  } finally {
    rmSync(context, { recursive: true, force: true });
  }
}

/**
 * The top-level folders under node_modules that `npm prune --omit=dev` keeps, from the lockfile;
 * the ones for other platforms (optional, never installed) are absent and skipped.
 */
function productionDependencies(): string[] {
  const lock = JSON.parse(readFileSync(join(repoRoot, "package-lock.json"), "utf8")) as {
    packages: Record<string, { dev?: boolean }>;
  };
  return Object.entries(lock.packages)
    .filter(([path, entry]) => path.startsWith("node_modules/") && !entry.dev)
    .map(([path]) => path)
    .filter((path) => path.split("node_modules/").length === 2 && existsSync(join(repoRoot, path)));
}

async function dockerBuild(
  docker: string,
  context: string,
  tag: string,
  run: string,
  buildArgs: Record<string, string>,
): Promise<void> {
  // The engine has no bridge: a RUN step gets the host's network or none would start.
  const args = [
    "build",
    "--quiet",
    "--network",
    "host",
    "--tag",
    tag,
    "--label",
    `${testLabel}=1`,
    "--label",
    `${testRunLabel}=${run}`,
  ];
  for (const [name, value] of Object.entries(buildArgs)) args.push("--build-arg", `${name}=${value}`);
  await exec(docker, [...args, context], {
    env: { ...process.env, DOCKER_BUILDKIT: "1" },
    maxBuffer: 16 * 1024 * 1024,
  }).catch((error: { stderr?: string; message: string }) => {
    throw new Error(`docker build of ${tag} failed: ${error.stderr || error.message}`);
  });
}
