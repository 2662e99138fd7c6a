import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Browser } from "playwright-core";
import { expect } from "vitest";
import { DockerEngine } from "../../src/exec/docker/docker-engine.js";
import { launchBrowser, startUp, type Up } from "./browser.js";
import { tempDir } from "./cli.js";
import { busyboxImage, removeBotObjects, removeTestObjects, testLabel, testRunLabel } from "./docker.js";
import { api } from "./server.js";

/** What the web UI's bot tests run against: an image, a `runyard up` whose runner has Docker, a browser. */
export interface WebBotUp {
  up: Up;
  browser: Browser;
  /** A busybox image whose command is the file's shell script. */
  image: string;
  /** Starts a bot through the API, waiting for the local runner to say it has Docker (503 until then); its id. */
  startBot(body: Record<string, unknown>): Promise<string>;
  /** Closes the browser and `up`, and removes the containers of `botIds` and the file's images. */
  close(botIds: readonly string[]): Promise<void>;
}

/**
 * Builds an image running `script` under `sh -c` (labelled with `run`, so the file's objects go
 * with it), and starts `runyard up` with `env` (bots on network `none`) beside a browser.
 */
export async function startWebBotUp(
  run: string,
  script: string,
  env: Record<string, string> = {},
): Promise<WebBotUp> {
  const engine = new DockerEngine();
  const base = await busyboxImage();
  const dir = tempDir("runyard-web-bot-");
  writeFileSync(join(dir, "Dockerfile"), `FROM ${base}\nCMD ["sh", "-c", ${JSON.stringify(script)}]\n`);
  const image = `runyard-test-${run}:1`;
  await engine.build(dir, image, () => {}, { [testLabel]: "1", [testRunLabel]: run });
  const [up, browser] = await Promise.all([
    startUp({ RUNYARD_BOT_NETWORK: "none", ...env }),
    launchBrowser(),
  ]);
  return {
    up,
    browser,
    image,
    async startBot(body) {
      let started = await api<{ bot: { id: string } }>(up.url, "POST", "/api/bots", body);
      await expect
        .poll(
          async () => {
            if (started.status === 503)
              started = await api<{ bot: { id: string } }>(up.url, "POST", "/api/bots", body);
            return started.status;
          },
          { timeout: 60_000, interval: 500 },
        )
        .toBe(202);
      return started.body.bot.id;
    },
    async close(botIds) {
      await browser.close();
      await up.proc.kill();
      await removeBotObjects(botIds);
      await removeTestObjects(run);
    },
  };
}
