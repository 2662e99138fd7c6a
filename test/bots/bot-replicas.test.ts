import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { pythonBaseImage } from "../helpers/base-images.js";
import { waitBot, waitBotLogs } from "../helpers/bots.js";
import { runCli, tempDir } from "../helpers/cli.js";
import { removeBotObjects, removeTestObjects, requireDocker } from "../helpers/docker.js";
import { createTestDatabase } from "../helpers/postgres.js";
import {
  adminToken,
  api,
  type Proc,
  runnerToken,
  startRunner,
  startTestServer,
  type TestServer,
} from "../helpers/server.js";

/**
 * A bot behind two server replicas on one PostgreSQL database: its runner's socket is on one
 * replica only, yet a webhook or a log download sent to either reaches the bot (the other
 * replica passes the call on, signed with the fleet's key). The real Docker engine, the example
 * echo bot in its webhook mode.
 */

const adminUrl = inject("postgresAdminUrl");
const haveDocker = await requireDocker();
const run = `bot-replicas-${process.pid}-${Date.now().toString(36)}`;
const botToken = `123456:ABC-replicas-${run}`;
const procs: Proc[] = [];
const botIds: string[] = [];
let holder: TestServer;
let other: TestServer;

/** The servers' webhook window (`RUNYARD_BOT_HOOK_WINDOW_SECS`); its burst is the default 20. */
const hookWindowSecs = 10;

/** When the last delivery before the burst was answered (it was counted before then). */
let lastDelivered = 0;

async function deliver(url: string, path: string, body: string, headers: Record<string, string> = {}) {
  const response = await fetch(new URL(path, url), {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body,
  });
  const text = await response.text();
  lastDelivered = Date.now();
  return { status: response.status, text };
}

const update = (id: number, text: string) =>
  JSON.stringify({ update_id: id, message: { chat: { id: 7 }, text } });

describe.skipIf(!haveDocker || !adminUrl)("a bot's webhook and log behind two replicas on PostgreSQL", () => {
  beforeAll(async () => {
    const databaseUrl = await createTestDatabase(adminUrl);
    const env = {
      RUNYARD_DATABASE_URL: databaseUrl,
      RUNYARD_SECRET_KEY: "bot-replicas-secret-key-0123456789abcdef",
      RUNYARD_BOT_NETWORK: "none",
      // The webhook rate counted over 10 s, not the default 2: the burst test's 40 requests land
      // within one window however loaded the machine (on CI's, they once took more than 2 s to
      // reach the limiter, and none was refused).
      RUNYARD_BOT_HOOK_WINDOW_SECS: String(hookWindowSecs),
    };
    holder = await startTestServer(tempDir(), env);
    procs.push(holder.proc);
    other = await startTestServer(tempDir(), env);
    procs.push(other.proc);
    // The runner is joined to the first replica only: its socket is there.
    procs.push(
      await startRunner(holder.url, await runnerToken(holder.url), {
        id: `runner-${run}`,
        env: {
          RUNYARD_BOT_BASE_IMAGE_PYTHON: await pythonBaseImage(),
          RUNYARD_LOG_LEVEL: "error",
        },
      }),
    );
    const dir = tempDir();
    writeFileSync(join(dir, "echo_bot.py"), readFileSync("examples/bots/echo_bot.py"));
    writeFileSync(
      join(dir, "main.py"),
      [
        "import os",
        'print("token", os.environ["BOT_TOKEN"], flush=True)',
        'exec(open("echo_bot.py").read())',
        "",
      ].join("\n"),
    );
    const started = await runCli(
      [
        "bot",
        "start",
        "echo",
        "--simple",
        join(dir, "main.py"),
        join(dir, "echo_bot.py"),
        "--entrypoint",
        "main.py",
        "-e",
        `BOT_TOKEN=${botToken}`,
        "-e",
        "WEBHOOK_PORT=8080",
        "--webhook",
        "8080",
        "--check",
        "0",
      ],
      { env: { RUNYARD_SERVER_URL: other.url, RUNYARD_TOKEN: adminToken } },
    );
    expect(started.code, started.stderr).toBe(0);
    const bot = await waitBot(holder.url, "echo", (b) => b.state === "running", 180_000);
    botIds.push(bot.id);
  }, 400_000);

  afterAll(async () => {
    await Promise.all(procs.splice(0).map((proc) => proc.kill("SIGKILL")));
    await removeBotObjects(botIds);
    await removeTestObjects(run);
  }, 60_000);

  it("answers a webhook sent to either replica with the bot's answer", async () => {
    const hook = await api<{ path: string; secret: string }>(other.url, "GET", "/api/bots/echo/webhook");
    expect(hook.status, JSON.stringify(hook.body)).toBe(200);
    // The bot says when it takes webhooks (its output comes as its run's events).
    await waitBotLogs(holder.url, "echo", "taking webhooks on port 8080", 60_000);
    let id = 0;
    for (const server of [holder, other, other, holder]) {
      id += 1;
      // The bot's port may take a moment to listen after the container starts.
      const deadline = Date.now() + 60_000;
      let got = await deliver(server.url, hook.body.path, update(id, `hi ${id}`));
      while (got.status !== 200 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 250));
        got = await deliver(server.url, hook.body.path, update(id, `hi ${id}`));
      }
      if (got.status !== 200) {
        const status = await api(holder.url, "GET", "/api/bots/echo");
        const log = await fetch(new URL("/api/bots/echo/logs/download", holder.url), {
          headers: { authorization: `Bearer ${adminToken}` },
        });
        expect.fail(
          `${got.text}\nbot: ${JSON.stringify(status.body)}\nlog: ${(await log.text()).slice(-3000)}`,
        );
      }
      expect(JSON.parse(got.text)).toEqual({ method: "sendMessage", chat_id: 7, text: `You said: hi ${id}` });
    }
    // The secret is still checked on the replica that took the request: a wrong one forwards nothing.
    const prefix = hook.body.path.slice(0, hook.body.path.lastIndexOf("/"));
    const wrong = await deliver(other.url, `${prefix}/wrong-secret`, update(99, "x"));
    expect(wrong.status).toBe(404);
    // And the body cap too.
    const big = await deliver(other.url, hook.body.path, "a".repeat(1024 * 1024 + 10));
    expect(big.status).toBe(413);
  }, 180_000);

  it("downloads the whole log through either replica, token masked", async () => {
    for (const server of [holder, other]) {
      const response = await fetch(new URL("/api/bots/echo/logs/download", server.url), {
        headers: { authorization: `Bearer ${adminToken}` },
      });
      const text = await response.text();
      expect(response.status, text).toBe(200);
      expect(text).toContain("token ***");
      expect(text).not.toContain(botToken);
    }
  }, 60_000);

  it("refuses a replica-to-replica call that is not signed with the fleet's key", async () => {
    const runnerId = `runner-${run}`;
    const body = JSON.stringify({
      runner_id: runnerId,
      bot_id: botIds[0],
      call: { kind: "log" },
      timeout_ms: 5000,
    });
    for (const signature of [undefined, `${Date.now()}.${"n".repeat(22)}.forged`, "0.x.y"]) {
      const response = await fetch(new URL("/api/fleet/bot-call", holder.url), {
        method: "POST",
        headers: {
          "content-type": "application/json",
          ...(signature ? { "x-runyard-replica-signature": signature } : {}),
        },
        body,
      });
      const text = await response.text();
      expect(response.status, text).toBe(401);
      expect(text).not.toContain("token");
    }
    // A user's token is no replica's signature either.
    const asUser = await fetch(new URL("/api/fleet/bot-call", holder.url), {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${adminToken}` },
      body,
    });
    expect(asUser.status).toBe(401);
  }, 60_000);

  // Last: the burst spends the bot's webhook allowance for two seconds.
  it("holds one webhook rate limit across both replicas: a burst split between them is refused past it with Retry-After", async () => {
    const hook = await api<{ path: string }>(other.url, "GET", "/api/bots/echo/webhook");
    // The limit counts a bot's requests in this whole second and the 9 before: once the tenth
    // second after the last delivery of the tests before begins, those are out of the window
    // (before, 15 of the burst were taken: 5 places had gone to earlier deliveries in the same
    // window). What the tests between have not taken of that time is waited.
    const clear = (Math.floor(lastDelivered / 1000) + hookWindowSecs) * 1000;
    if (clear > Date.now()) await new Promise((resolve) => setTimeout(resolve, clear - Date.now()));
    // 40 at once, every other one to each replica: each replica alone would take 20 of its own.
    const answers = await Promise.all(
      Array.from({ length: 40 }, async (_, i) => {
        const response = await fetch(new URL(hook.body.path, (i % 2 === 0 ? holder : other).url), {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: update(1000 + i, `burst ${i}`),
        });
        await response.text();
        return { status: response.status, retryAfter: response.headers.get("retry-after") };
      }),
    );
    const taken = answers.filter((answer) => answer.status !== 429);
    const refused = answers.filter((answer) => answer.status === 429);
    // Each replica got exactly its own burst of 20, which a limit kept per replica would all take;
    // counted in the database, 20 in all are taken and the other 20 refused, each saying to wait
    // until the window has room again. (Taken is not answered: the bot may not answer 20 at once
    // on a loaded machine, 502 or 503.)
    const statuses = answers.map((answer) => answer.status).join(",");
    expect(taken.length, statuses).toBe(20);
    expect(refused.length, statuses).toBe(20);
    for (const answer of refused) {
      expect(Number(answer.retryAfter)).toBeGreaterThanOrEqual(1);
      expect(Number(answer.retryAfter)).toBeLessThanOrEqual(hookWindowSecs);
    }
  }, 120_000);
});
