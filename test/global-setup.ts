import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync, statSync } from "node:fs";
import type { TestProject } from "vitest/node";
import { probeSandbox } from "../src/exec/sandbox/sandbox.js";
import { dockerAvailable, removeTestObjects } from "./helpers/docker.js";

declare module "vitest" {
  export interface ProvidedContext {
    /**
     * This run's id, on what its files share and leave for the run's end (the Kubernetes agent
     * images): the run's teardown removes what carries it, as the engine outlives the run.
     */
    testRunId: string;
  }
}

const modified = (path: string): number | undefined =>
  statSync(new URL(path, import.meta.url), { throwIfNoEntry: false })?.mtimeMs;

/**
 * Integration tests run the built CLI, as a user does; build it (and the fork-server) once if
 * missing. The bundle `bin/runyard.js` loads is rebuilt when dist/ is newer than it (after
 * `npx tsc -p tsconfig.build.json`), so the tests run what `npm run build` ships.
 *
 * The runners they start sandbox their steps with bubblewrap, as users' runners do: where bwrap
 * cannot make a sandbox, the runners would quietly run every step unsandboxed and the suite would
 * test a runner users do not have, so it stops here instead, on CI and on a laptop alike.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const probe = await probeSandbox();
  if (probe.isolation === "none") {
    throw new Error(
      `the integration tests run their runners with the sandbox on, as users have it, but ${probe.problem}: ${probe.hint}`,
    );
  }
  const root = new URL("..", import.meta.url);
  if (!existsSync(new URL("../native/build/fork-server", import.meta.url))) {
    execFileSync("sh", ["native/build.sh"], { stdio: "inherit", cwd: root });
  }
  if (!existsSync(new URL("../dist/cli/main.js", import.meta.url))) {
    execFileSync(process.execPath, ["node_modules/typescript-7/bin/tsc", "-p", "tsconfig.build.json"], {
      stdio: "inherit",
      cwd: root,
    });
  }
  const bundled = modified("../dist/cli-bundle/main.js");
  if (bundled === undefined || bundled < (modified("../dist/cli/main.js") ?? 0)) {
    execFileSync(process.execPath, ["build/bundle-cli.js"], { stdio: "inherit", cwd: root });
  }
  // One id for the whole vitest run: both integration projects run this setup, in vitest's one
  // main process, and a file of either may build what the run's teardown must remove. With an
  // id each, a run left its Kubernetes agent images (5 GB) behind.
  process.env.RUNYARD_TEST_RUN_ID ??= `run-${randomUUID()}`;
  const run = process.env.RUNYARD_TEST_RUN_ID;
  project.provide("testRunId", run);
  // The engine outlives the run, on CI's machine too: images the run's files shared (the
  // Kubernetes agent images, a GB or more each) would fill its disk run after run.
  return async () => {
    if (await dockerAvailable()) await removeTestObjects(run);
  };
}
