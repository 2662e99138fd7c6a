import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchBrowser, logIn, requireBrowser, startUp, type Up } from "../helpers/browser.js";
import { isFinal, stepDir, submit, waitForRun } from "../helpers/server.js";

/** A run waiting for its concurrency group says so on its page, once, naming the run it waits for. */

const haveBrowser = requireBrowser();
let up: Up;
let browser: Browser;

/** Two hosts of one group: the page must say the reason once, not once per host. */
const gated = (gate: string) => `name: deploy
concurrency: deploy-prod
inventory:
  hosts:
    a: {}
    b: {}
steps:
  - name: deploy
    targets: [a, b]
    action: shell.run
    args:
      cwd: ${gate}
      script: |
        while [ ! -f "${gate}/release" ]; do sleep 0.05; done
`;

describe.skipIf(!haveBrowser)("the run page of a run waiting for its concurrency group", () => {
  beforeAll(async () => {
    up = await startUp();
    browser = await launchBrowser();
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await up?.proc.kill();
  });

  it("says once what it waits for, then runs when the holder ends", async () => {
    const gate = stepDir();
    const holder = await submit(up.url, gated(gate));
    await waitForRun(up.url, holder, (run) => run.status === "running");
    const waiting = await submit(up.url, gated(gate));
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await logIn(page, up.url);
    await page.goto(`${up.url}/#/runs/${waiting}`);
    const reasons = page.locator(".waiting-for li");
    await reasons.first().waitFor();
    expect(await reasons.allTextContents()).toEqual([
      `waiting for concurrency group deploy-prod (${holder} is running)`,
    ]);
    writeFileSync(join(gate, "release"), "");
    expect((await waitForRun(up.url, waiting, isFinal)).status).toBe("success");
    await page.close();
  }, 60_000);
});
