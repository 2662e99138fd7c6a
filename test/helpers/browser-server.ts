import type { TestProject } from "vitest/node";
import { browserArgs, chromiumPath } from "./chromium.js";

declare module "vitest" {
  export interface ProvidedContext {
    /** The run's one chromium, for `chromium.connect`; empty when there is no chromium here. */
    browserWsEndpoint: string;
  }
}

/**
 * Global setup of the integration projects: one chromium for the whole run, which every web UI
 * file connects to (`launchBrowser`), each page in a context of its own, instead of each file
 * starting a browser of its own (a second or more of CPU each). Stopped at the end of the run.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  if (!chromiumPath) {
    project.provide("browserWsEndpoint", "");
    return async () => {};
  }
  const { chromium } = await import("playwright-core");
  const server = await chromium.launchServer({ executablePath: chromiumPath, args: browserArgs });
  project.provide("browserWsEndpoint", server.wsEndpoint());
  return () => server.close();
}
