import { spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import type { TestProject } from "vitest/node";
import { browserArgs, chromiumPath } from "./chromium.js";

declare module "vitest" {
  export interface ProvidedContext {
    /** The run's one chromium, for `chromium.connect`; empty when there is no chromium here. */
    browserWsEndpoint: string;
  }
}

/** Launches chromium's server and prints its endpoint; runs until it is sent SIGTERM. */
const serve = `
import { chromium } from "playwright-core";
const server = await chromium.launchServer(JSON.parse(process.argv[1]));
process.stdout.write(server.wsEndpoint() + "\\n");
process.on("SIGTERM", () => server.close().then(() => process.exit(0)));
`;

/**
 * Global setup of the integration projects: one chromium for the whole run, which every web UI
 * file connects to (`launchBrowser`), each page in a context of its own, instead of each file
 * starting a browser of its own (a second or more of CPU each). Its Playwright server runs in a
 * process of its own, so the answers pages give the tests never wait on vitest's main thread.
 * Stopped at the end of the run.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  if (!chromiumPath) {
    project.provide("browserWsEndpoint", "");
    return async () => {};
  }
  const options = JSON.stringify({ executablePath: chromiumPath, args: browserArgs });
  const child = spawn(process.execPath, ["--input-type=module", "-e", serve, options], {
    cwd: new URL("../..", import.meta.url),
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exited = once(child, "exit");
  const early = exited.then(([code]) => {
    throw new Error(`the tests' chromium server exited with ${code} before it listened`);
  });
  // Its exit at the end of the run, after it listened, is no error.
  early.catch(() => {});
  const [endpoint] = (await Promise.race([
    once(createInterface({ input: child.stdout }), "line"),
    early,
  ])) as [string];
  project.provide("browserWsEndpoint", endpoint);
  return async () => {
    child.kill("SIGTERM");
    await exited;
  };
}
