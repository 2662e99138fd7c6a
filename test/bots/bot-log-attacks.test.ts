import { appendFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type BotView, waitBot } from "../helpers/bots.js";
import { tempDir } from "../helpers/cli.js";
import { commandImage, removeBotObjects, removeTestObjects, requireDocker } from "../helpers/docker.js";
import {
  api,
  createToken,
  type Proc,
  startRunner,
  startTestServer,
  type TestServer,
} from "../helpers/server.js";

/**
 * A member's bot logs on a runner their tenant shares, attacked through everything the member
 * controls. A real server, a real runner, the real Docker engine.
 */

const haveDocker = await requireDocker();
const run = `attacks2-${process.pid}-${Date.now().toString(36)}`;

let server: TestServer;
let runner: Proc | undefined;
let runnerHome = "";
const runnerId = `acme-${run}`;
const botIds: string[] = [];
let acme = "";
let acmeTeammate = "";
let image = "";
const userTimings = { RUNYARD_HEARTBEAT_MS: "2000", RUNYARD_LEASE_MS: "30000" };

async function startBot(bearer: string, body: Record<string, unknown>): Promise<BotView> {
  const answer = await api<{ bot: BotView }>(server.url, "POST", "/api/bots", body, bearer);
  expect(answer.status, JSON.stringify(answer.body)).toBe(202);
  botIds.push(answer.body.bot.id);
  return answer.body.bot;
}

describe.skipIf(!haveDocker)("the day's bot changes attacked by a member", () => {
  beforeAll(async () => {
    image = await commandImage(
      `runyard-test-attacks2-${run}:1`,
      "trap 'exit 0' TERM; echo up; while true; do sleep 1 & wait $!; done",
      run,
    );
    // The default heartbeat and a long lease, as a server and runner have them: the tests' fast
    // ones (300 ms) are shorter than moving a few MiB over the link takes on a loaded machine.
    server = await startTestServer(tempDir(), { RUNYARD_BOT_NETWORK: "none", ...userTimings });
    acme = await createToken(server.url, { kind: "user", name: "acme-member", tenant_id: "acme" });
    acmeTeammate = await createToken(server.url, { kind: "user", name: "acme-teammate", tenant_id: "acme" });
    const runnerToken = await createToken(server.url, {
      kind: "runner",
      name: "acme runner",
      tenant_id: "acme",
    });
    runnerHome = tempDir();
    runner = await startRunner(server.url, runnerToken, {
      id: runnerId,
      env: {
        RUNYARD_HOME: runnerHome,
        RUNYARD_LOG_LEVEL: process.env.DEBUG_RUNNER ? "info" : "error",
        ...userTimings,
      },
    });
  }, 240_000);

  afterAll(async () => {
    await runner?.kill("SIGKILL");
    await server?.proc.kill("SIGKILL");
    await removeBotObjects(botIds);
    await removeTestObjects(run);
  }, 60_000);

  it("a bot's log as big as its log_max_mb allows downloads as its newest part, and its runner stays connected", async () => {
    // The member asks for the largest log there is; a chatty bot fills it. The test writes the
    // output to the runner's kept log itself (as the runner would, line by line): printing 90 MiB
    // through a container would only make the test slow.
    const bot = await startBot(acme, { name: "chatty", image, log_max_mb: 1024 });
    await waitBot(server.url, "chatty", (now) => now.state === "running", 120_000, acme);
    const logs = join(runnerHome, "runners", encodeURIComponent(runnerId), "bot-logs");
    mkdirSync(logs, { recursive: true });
    const line = `2026-11-25T20:00:00.000Z stdout ${"x".repeat(1000)}\n`;
    const mib = Buffer.from(line.repeat(Math.ceil((1024 * 1024) / line.length)));
    for (let i = 0; i < 90; i++) appendFileSync(join(logs, `${bot.id}.log.1`), mib);
    appendFileSync(join(logs, `${bot.id}.log`), "2026-11-25T20:00:01.000Z stdout the newest line\n");

    const response = await fetch(new URL("/api/bots/chatty/logs/download", server.url), {
      headers: { authorization: `Bearer ${acme}` },
      signal: AbortSignal.timeout(120_000),
    });
    const text = await response.text();
    expect(
      response.status,
      `${text.slice(0, 300)}\nrunner: ${runner?.output().slice(-2000)}\nserver: ${server.proc.output().slice(-2000)}`,
    ).toBe(200);
    expect(text.endsWith("the newest line\n")).toBe(true);
    expect(text.length).toBeGreaterThan(7 * 1024 * 1024);
    expect(text.length).toBeLessThanOrEqual(8 * 1024 * 1024 + 200);
    expect(text.split("\n", 1)[0]).toMatch(/older output left out/);
    // A teammate downloads none of it.
    const theirs = await api(server.url, "GET", "/api/bots/chatty/logs/download", undefined, acmeTeammate);
    expect(theirs.status).toBe(404);
  }, 300_000);
});
