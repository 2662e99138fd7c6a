import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DockerEngine } from "../../src/exec/docker/docker-engine.js";
import { repoRoot, tempDir } from "../helpers/cli.js";
import { removeTestObjects, requireDocker, testRunLabel } from "../helpers/docker.js";
import { adminToken, api, freePort, readEvents, submit, waitForRun } from "../helpers/server.js";
import { composeOnHostNetwork } from "./compose-on-host-network.js";
import {
  buildCacheIds,
  buildKitDocker,
  buildRunyardImage,
  composeCommand,
  pruneBuildCacheSince,
} from "./runyard-image.js";

const exec = promisify(execFile);

/**
 * The shipped docker-compose.yml with runyard's image built by the shipped Dockerfile: a server
 * and two runners in seed 000's two groups, configured with seed 000's ADOS_* variables, run a
 * workflow that targets both groups. compose-on-host-network.ts puts them on the host's network
 * (the engine here has no bridge); runyard-image.ts says what the image build replaces.
 */
const run = randomBytes(4).toString("hex");
const project = `runyard-test-${run}`;
/**
 * RUNYARD_TEST_IMAGE: run against an image built elsewhere with the Dockerfile's own stages
 * (`docker build -t runyard:0.1.0 .` where Docker Hub is reachable) instead of building one here.
 * It is the caller's, so the cleanup leaves it.
 */
const givenImage = process.env.RUNYARD_TEST_IMAGE;
const tag = givenImage ?? `runyard-test-image:${run}`;

let docker: string | undefined;
let compose: string[] | undefined;
let port = 0;
/** The compose file the test runs: the shipped one on the host's network. */
let composeFile = "";

async function tools(): Promise<boolean> {
  if (!(await requireDocker())) return false;
  docker = await buildKitDocker();
  compose = docker ? await composeCommand(docker) : undefined;
  if (docker && compose) return true;
  const missing = docker
    ? "neither `docker compose` nor `docker-compose` runs"
    : "no docker CLI that builds with BuildKit (Docker 20.10, or buildx)";
  if (process.env.CI === "true")
    throw new Error(`${missing}; CI must run the compose test (.ci/run installs docker-compose)`);
  process.stderr.write(`${missing}; skipping the compose test\n`);
  return false;
}

/** Runs the shipped compose file, put on the host's network, as a project of its own. */
async function composeRun(args: string[], env: Record<string, string> = {}): Promise<string> {
  const [command, ...prefix] = compose!;
  // The project folder is the checkout, as for the shipped file: `build: .` means the repository.
  const files = ["-f", composeFile, "--project-directory", repoRoot];
  try {
    const { stdout } = await exec(command!, [...prefix, "-p", project, ...files, ...args], {
      cwd: repoRoot,
      env: {
        ...process.env,
        RUNYARD_IMAGE: tag,
        RUNYARD_ADMIN_TOKEN: adminToken,
        ...env,
      },
      maxBuffer: 16 * 1024 * 1024,
    });
    return stdout;
  } catch (error) {
    const { stderr, message } = error as { stderr?: string; message: string };
    throw new Error(`${command} ${args.join(" ")} failed: ${stderr || message}`);
  }
}

const enabled = await tools();

describe.skipIf(!enabled)("docker-compose.yml with runyard's image", () => {
  /** The engine's BuildKit cache before this file's build, to prune what the build added. */
  let buildCacheBefore: Set<string> | undefined;
  beforeAll(async () => {
    port = await freePort();
    composeFile = join(tempDir(), "docker-compose.yml");
    const shipped = readFileSync(join(repoRoot, "docker-compose.yml"), "utf8");
    writeFileSync(composeFile, composeOnHostNetwork(shipped, port, run));
    if (!givenImage) {
      buildCacheBefore = await buildCacheIds();
      const { buildMs } = await buildRunyardImage(docker!, run, tag);
      process.stderr.write(`compose test: runyard image built in ${(buildMs / 1000).toFixed(1)} s\n`);
    }
    // The image's build (npm ci and the TypeScript build inside it) took 92 s on a quiet run and
    // 159 s in one beside other work.
  }, 300_000);

  afterAll(async () => {
    // Containers and the project's named volumes first, then the images; whatever compose left
    // (an interrupted `up`) goes by the run's label.
    await composeRun(["down", "--volumes", "--remove-orphans", "--timeout", "5"]).catch(() => undefined);
    await removeTestObjects(run);
    const engine = new DockerEngine();
    const { Volumes } = await engine.docker.listVolumes({ filters: { label: [`${testRunLabel}=${run}`] } });
    await Promise.all((Volumes ?? []).map((volume) => engine.docker.getVolume(volume.Name).remove()));
    if (buildCacheBefore) await pruneBuildCacheSince(buildCacheBefore);
    // Removing an image and pruning its build cache took past 60 s on a loaded machine.
  }, 180_000);

  it("builds one image for server and runner: runyard as entrypoint, run as uid 1000", async () => {
    const image = await new DockerEngine().docker.getImage(tag).inspect();
    expect(image.Config.User).toBe("1000:1000");
    expect(image.Config.Entrypoint).toEqual(["/usr/bin/tini", "--", "runyard"]);
    expect(image.Config.Env).toContain("RUNYARD_HOME=/var/lib/runyard");
    process.stderr.write(`compose test: image size ${(image.Size / 1e6).toFixed(0)} MB\n`);
    const { stdout } = await exec(docker!, [
      "run",
      "--rm",
      "--network",
      "none",
      "--label",
      `${testRunLabel}=${run}`,
      tag,
      "--version",
    ]);
    expect(stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it("starts the server, gives each runner a group-bound token from it, and runs a workflow across both groups", async () => {
    await composeRun(["up", "-d", "server"]);
    const url = `http://127.0.0.1:${port}`;
    await waitForHealth(url);
    // As docs/deploy.md says: the tokens come from the running server's own database.
    const tokens: Record<string, string> = {};
    for (const [variable, group, name] of [
      ["FRONTEND_RUNNER_TOKEN", "frontend-runners", "frontend-001"],
      ["BACKEND_RUNNER_TOKEN", "backend-runners", "backend-001"],
    ] as const) {
      const printed = await composeRun([
        "exec",
        "-T",
        "server",
        "runyard",
        "token",
        "create",
        "--runner",
        "--group",
        group,
        "--name",
        name,
      ]);
      tokens[variable] = printed.trim();
      expect(tokens[variable]).toMatch(/^ryt_/);
    }
    await composeRun(["up", "-d"], tokens);
    const runners = await waitForRunners(url, ["frontend-001", "backend-001"]);
    expect(runners.map((r) => [r.id, r.group, r.hostname, r.mode])).toEqual([
      ["backend-001", "backend-runners", "backend-001", "all"],
      ["frontend-001", "frontend-runners", "frontend-001", "all"],
    ]);

    const runId = await submit(url, workflowAcrossGroups);
    const done = await waitForRun(url, runId, (r) => r.status !== "queued" && r.status !== "running", 60_000);
    const events = await readEvents(url, runId);
    expect(done.status, JSON.stringify(events)).toBe("success");
    const output = events
      .flatMap((event) => (event.type === "step.output" ? [`${event.host}: ${event.data.trim()}`] : []))
      .sort();
    // Each step ran in its group's runner container, as uid 1000, with the runner's ADOS_* env.
    expect(output).toEqual([
      "backend: backend-001 backend-runners uid=1000",
      "frontend: frontend-001 frontend-runners uid=1000",
    ]);
  }, 150_000);
});

const workflowAcrossGroups = `
version: v0.1
name: compose
inventory:
  hosts:
    frontend: {group: frontend-runners}
    backend: {group: backend-runners}
steps:
  - name: where
    targets: [frontend, backend]
    action: shell.run
    args:
      script: echo "$ADOS_RUNNER_ID $ADOS_GROUP uid=$(id -u)"
`;

async function waitForHealth(url: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const healthy = await fetch(new URL("/health", url)).then(
      (r) => r.ok,
      () => false,
    );
    if (healthy) return;
    if (Date.now() > deadline) {
      const logs = await composeRun(["logs", "--no-color", "server"]).catch((error: Error) => error.message);
      throw new Error(`the server's /health did not answer on ${url}; its logs:\n${logs}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

interface RunnerView {
  id: string;
  group: string;
  hostname: string;
  mode: string;
  status: string;
}

async function waitForRunners(url: string, ids: string[]): Promise<RunnerView[]> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const { body } = await api<RunnerView[]>(url, "GET", "/api/runners");
    const connected = body.filter((r) => ids.includes(r.id) && r.status === "connected");
    if (connected.length === ids.length) return connected.sort((a, b) => a.id.localeCompare(b.id));
    if (Date.now() > deadline) {
      const logs = await composeRun(["logs", "--no-color"]).catch((error: Error) => error.message);
      throw new Error(`runners never all connected; last: ${JSON.stringify(body)}; logs:\n${logs}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
