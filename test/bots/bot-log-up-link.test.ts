import { appendFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type BotView, waitBot } from "../helpers/bots.js";
import { tempDir } from "../helpers/cli.js";
import { commandImage, removeBotObjects, removeTestObjects, requireDocker } from "../helpers/docker.js";
import { adminToken, api, freePort, type Proc, startCli, startedOrKilled } from "../helpers/server.js";

/**
 * A platform admin's bot on `runyard up`'s own runner, whose link to the server is in the process: a large
 * log comes back in many `bot_reply_part`s, each sent only once the one before was delivered
 * (`sendPart`), and the download is whole. Real Docker.
 */

const haveDocker = await requireDocker();
const run = `uplink-${process.pid}-${Date.now().toString(36)}`;
const botIds: string[] = [];

describe.skipIf(!haveDocker)("a bot's log through `runyard up`'s linked runner", () => {
  let up: Proc | undefined;
  let url = "";
  let home = "";
  let image = "";

  beforeAll(async () => {
    image = await commandImage(
      `runyard-test-uplink-${run}:1`,
      "trap 'exit 0' TERM; echo up; while true; do sleep 1 & wait $!; done",
      run,
    );
    home = tempDir("runyard-up-bot-link-");
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    up = startCli(["up", "--port", String(port), "--home", home], {
      RUNYARD_ADMIN_TOKEN: adminToken,
      RUNYARD_BOT_NETWORK: "none",
      RUNYARD_LOG_LEVEL: "warn",
    });
    await startedOrKilled(up, "local runner connected");
  }, 240_000);

  afterAll(async () => {
    await up?.kill("SIGKILL");
    await removeBotObjects(botIds);
    await removeTestObjects(run);
  }, 60_000);

  it("downloads a 90 MiB log's newest part whole, and the link stays up", async () => {
    // A platform bot: a tenant's bots run on the tenant's own runners only.
    const owner = adminToken;
    const started = await api<{ bot: BotView }>(
      url,
      "POST",
      "/api/bots",
      { name: "chatty", image, log_max_mb: 1024 },
      owner,
    );
    expect(started.status, JSON.stringify(started.body)).toBe(202);
    botIds.push(started.body.bot.id);
    const bot = started.body.bot;
    await waitBot(url, "chatty", (now) => now.state === "running", 120_000, owner);
    const runners = await api<Array<{ id: string }>>(url, "GET", "/api/runners");
    const runnerId = runners.body[0]?.id ?? "";
    // Written to the runner's kept log as the runner would, line by line: printing 90 MiB
    // through a container would only make the test slow.
    const logs = join(home, "runners", encodeURIComponent(runnerId), "bot-logs");
    mkdirSync(logs, { recursive: true });
    const line = `2026-11-25T20:00:00.000Z stdout ${"x".repeat(1000)}\n`;
    const mib = Buffer.from(line.repeat(Math.ceil((1024 * 1024) / line.length)));
    for (let i = 0; i < 90; i++) appendFileSync(join(logs, `${bot.id}.log.1`), mib);
    appendFileSync(join(logs, `${bot.id}.log`), "2026-11-25T20:00:01.000Z stdout the newest line\n");

    const response = await fetch(new URL("/api/bots/chatty/logs/download", url), {
      headers: { authorization: `Bearer ${owner}` },
      signal: AbortSignal.timeout(120_000),
    });
    const text = await response.text();
    expect(response.status, `${text.slice(0, 300)}\nup: ${up?.output().slice(-2000)}`).toBe(200);
    expect(text.endsWith("the newest line\n")).toBe(true);
    expect(text.length).toBeGreaterThan(7 * 1024 * 1024);
    expect(text.length).toBeLessThanOrEqual(8 * 1024 * 1024 + 200);
    expect(text.split("\n", 1)[0]).toMatch(/older output left out/);
    expect(up?.output()).not.toContain("disconnected from server");
  }, 300_000);
});
