import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DockerEngine } from "../../src/exec/docker/docker-engine.js";
import { type BotView, waitBot } from "../helpers/bots.js";
import { tempDir } from "../helpers/cli.js";
import { commandImage, removeBotObjects, removeTestObjects, requireDocker } from "../helpers/docker.js";
import {
  api,
  freePort,
  type Proc,
  startRunner,
  startTestServer,
  type TestServer,
} from "../helpers/server.js";

/**
 * An update waits for its new version within one request. When the server is killed during that
 * wait, the version it was starting is left `starting`; once longer has passed than any update
 * may wait, the next update stops that version's run, marks it failed and goes ahead. The time
 * that passed is written into the stored version (the only stand-in here: waiting six minutes).
 */

const haveDocker = await requireDocker();
const run = `bot-cut-off-${process.pid}-${Date.now().toString(36)}`;
const engine = new DockerEngine();
const env = { RUNYARD_BOT_NETWORK: "none", RUNYARD_BOT_MEMORY_MB: "64" };

let home: string;
let port: number;
let server: TestServer;
let runner: Proc;
let token: string;
const botIds: string[] = [];
const images: Record<string, string> = {};

interface Version {
  version: number;
  state: string;
  error: { code: string; message: string } | null;
}

const versionsOf = async (name: string) =>
  (await api<{ versions: Version[] }>(server.url, "GET", `/api/bots/${name}/versions`, undefined, token)).body
    .versions;

describe.skipIf(!haveDocker)("a bot update cut off by its server's end", () => {
  beforeAll(async () => {
    const script = (label: string) =>
      `trap 'exit 0' TERM; echo "${label} up"; while true; do sleep 1 & wait $!; done`;
    images.v1 = await commandImage(`runyard-test-cut-${run}:v1`, script("v1"), run);
    images.v2 = await commandImage(`runyard-test-cut-${run}:v2`, script("v2"), run);
    home = tempDir();
    port = await freePort();
    server = await startTestServer(home, env, port);
    const made = await api<{ token: string }>(server.url, "POST", "/api/tokens", {
      kind: "user",
      name: "alice",
      tenant_id: "acme",
    });
    token = made.body.token;
    const runnerToken = await api<{ token: string }>(server.url, "POST", "/api/tokens", {
      kind: "runner",
      name: "acme runner",
      tenant_id: "acme",
    });
    runner = await startRunner(server.url, runnerToken.body.token, { id: `acme-${run}` });
  }, 240_000);

  afterAll(async () => {
    await runner?.kill("SIGKILL");
    await server?.proc.kill("SIGKILL");
    await removeBotObjects(botIds);
    await removeTestObjects(run);
  }, 60_000);

  it("the next update fails the cut-off version, stops its run and goes ahead", async () => {
    const started = await api<{ bot: BotView }>(
      server.url,
      "POST",
      "/api/bots",
      { name: "cut", image: images.v1 },
      token,
    );
    expect(started.status, JSON.stringify(started.body)).toBe(202);
    botIds.push(started.body.bot.id);
    await waitBot(server.url, "cut", (bot) => bot.state === "running", 120_000, token);

    // A health check that never passes keeps the update waiting until the server is killed.
    const update = api(
      server.url,
      "POST",
      "/api/bots/cut/update",
      {
        image: images.v2,
        health: { cmd: "exit 1", interval_ms: 1000, start_period_ms: 3_600_000 },
        timeout_secs: 280,
      },
      token,
    ).catch((error: unknown) => error);
    await expect
      .poll(async () => (await versionsOf("cut")).find((v) => v.version === 2)?.state, { timeout: 60_000 })
      .toBe("starting");
    await server.proc.kill("SIGKILL");
    await update;

    // Seven minutes pass (longer than any update may wait).
    const db = new Database(join(home, "runyard.db"));
    const longAgo = new Date(Date.now() - 7 * 60_000).toISOString();
    db.prepare("UPDATE bot_versions SET created_at = ? WHERE version = 2").run(longAgo);
    db.close();

    server = await startTestServer(home, env, port);
    // The runner comes back to the restarted server and reports the bot running (version 1).
    await waitBot(server.url, "cut", (bot) => bot.state === "running", 120_000, token);
    const again = await api<{ version: { version: number } }>(
      server.url,
      "POST",
      "/api/bots/cut/update",
      { image: images.v1, min_ready_secs: 2 },
      token,
    );
    expect(again.status, JSON.stringify(again.body)).toBe(200);
    expect(again.body.version.version).toBe(3);
    const versions = await versionsOf("cut");
    const cut = versions.find((v) => v.version === 2);
    expect(cut?.state).toBe("failed");
    expect(cut?.error?.code).toBe("BOT_UPDATE_FAILED");
    expect(cut?.error?.message).toContain("cut off");
    // The cut-off version's container is stopped, and version 1's once 3 is ready: only 3's runs.
    // Named, so a failure shows which version still runs.
    await expect
      .poll(
        async () =>
          (
            await engine.docker.listContainers({
              filters: { label: [`runyard.bot=${started.body.bot.id}`], status: ["running"] },
            })
          ).flatMap((container) => container.Names),
        { timeout: 120_000 },
      )
      .toEqual([`/runyard-bot-${started.body.bot.id}-v3`]);
  }, 400_000);
});
