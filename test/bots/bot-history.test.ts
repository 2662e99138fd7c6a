import { readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pythonBaseImage } from "../helpers/base-images.js";
import { type BotView, waitBot as waitBotIn } from "../helpers/bots.js";
import { runCli, tempDir } from "../helpers/cli.js";
import { removeBotObjects, removeTestObjects, requireDocker } from "../helpers/docker.js";
import {
  adminToken,
  api,
  type Proc,
  startRunner,
  startTestServer,
  type TestServer,
} from "../helpers/server.js";

/**
 * A bot's resource history, alerts, usable logs and inbound webhooks, end to end: a real server,
 * a runner per tenant, the real Docker engine, the example echo bot in its webhook mode, and a
 * notify receiver on 127.0.0.1. Each is attacked from another tenant too.
 */

const haveDocker = await requireDocker();
const run = `bot-history-${process.pid}-${Date.now().toString(36)}`;
const botToken = `123456:ABC-history-${run}`;

let server: TestServer;
const runners: Proc[] = [];
const botIds: string[] = [];
let acme: string;
let globex: string;
let receiver: Server;
let receiverUrl: string;
const notices: Record<string, unknown>[] = [];
/** Resolves with the receiver's first notice, when it comes. */
let firstNotice: Promise<Record<string, unknown>>;

async function token(body: Record<string, string>): Promise<string> {
  const answer = await api<{ token: string }>(server.url, "POST", "/api/tokens", body);
  expect(answer.status, JSON.stringify(answer.body)).toBe(201);
  return answer.body.token;
}

async function poll<T>(what: string, read: () => Promise<T | undefined>, timeoutMs = 90_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what} never came`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** POSTs raw bytes to the server without a token, as Telegram does. */
async function deliver(path: string, body: string | Buffer, headers: Record<string, string> = {}) {
  const response = await fetch(new URL(path, server.url), {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body,
  });
  return { status: response.status, text: await response.text(), type: response.headers.get("content-type") };
}

interface Stats {
  resolution_secs: number;
  samples: { memory_bytes: number; memory_limit_bytes: number | null; pids: number; restarts: number }[];
}

describe.skipIf(!haveDocker)(
  "bot history, alerts, logs and webhooks on a real server, runners and Docker",
  () => {
    beforeAll(async () => {
      let noticed: (notice: Record<string, unknown>) => void = () => undefined;
      firstNotice = new Promise((resolve) => (noticed = resolve));
      receiver = createServer((request, response) => {
        let body = "";
        request.on("data", (chunk: Buffer) => (body += chunk.toString()));
        request.on("end", () => {
          notices.push(JSON.parse(body) as Record<string, unknown>);
          noticed(notices[0]!);
          response.end("ok");
        });
      });
      await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
      const address = receiver.address();
      receiverUrl = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}/alerts`;
      const home = tempDir();
      const config = join(home, "config.yaml");
      writeFileSync(config, "notify_hosts:\n  - 127.0.0.1\n");
      server = await startTestServer(
        home,
        // The leader checks alerts each second (not each 5 s): the alert's test waits on checks.
        { RUNYARD_BOT_NETWORK: "none", RUNYARD_BOT_MEMORY_MB: "64", RUNYARD_BOT_ALERT_CHECK_SECS: "1" },
        undefined,
        ["--config", config],
      );
      acme = await token({ kind: "user", name: "alice", tenant_id: "acme" });
      globex = await token({ kind: "user", name: "mallory", tenant_id: "globex" });
      const python = await pythonBaseImage();
      for (const tenant of ["acme", "globex"]) {
        const runnerToken = await token({ kind: "runner", name: `${tenant} runner`, tenant_id: tenant });
        runners.push(
          await startRunner(server.url, runnerToken, {
            id: `${tenant}-${run}`,
            env: {
              RUNYARD_BOT_BASE_IMAGE_PYTHON: python,
              // A sample each second (not each 5 s): the stats and alert tests wait on samples.
              RUNYARD_BOT_STATS_SECS: "1",
              // Warnings too: a reconnect (a webhook call it held then fails 502) says why.
              RUNYARD_LOG_LEVEL: process.env.DEBUG_RUNNER ? "info" : "warn",
            },
          }),
        );
      }
      // The example echo bot in webhook mode, started as a user would with the CLI; it says its
      // token first (which every log must mask) and holds more memory than its alert allows.
      const dir = tempDir();
      writeFileSync(join(dir, "echo_bot.py"), readFileSync("examples/bots/echo_bot.py"));
      writeFileSync(
        join(dir, "main.py"),
        [
          "import os",
          'print("token", os.environ["BOT_TOKEN"], flush=True)',
          "ballast = bytearray(12 * 1024 * 1024)",
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
          "--alert",
          "memory>5%/3s",
          "--notify",
          receiverUrl,
          "--log-max-mb",
          "1",
          "--check",
          "0",
        ],
        { env: { RUNYARD_SERVER_URL: server.url, RUNYARD_TOKEN: acme } },
      );
      expect(started.code, started.stderr).toBe(0);
      const bot = await waitBotIn(server.url, "echo", (b) => b.state === "running", 180_000, acme);
      botIds.push(bot.id);
    }, 400_000);

    afterAll(async () => {
      for (const runner of runners) await runner.kill("SIGKILL");
      await server?.proc.kill("SIGKILL");
      receiver?.close();
      await removeBotObjects(botIds);
      await removeTestObjects(run);
    }, 60_000);

    const bots = (bearer: string, path: string) =>
      api<Record<string, unknown>>(server.url, "GET", path, undefined, bearer);

    it("forwards a Telegram update to the echo bot's port through its runner and gives back its answer; a wrong or missing secret, another bot's id or a body past 1 MiB forward nothing", async () => {
      const hook = await api<{ path: string; secret: string; port: number }>(
        server.url,
        "GET",
        "/api/bots/echo/webhook",
        undefined,
        acme,
      );
      expect(hook.status, JSON.stringify(hook.body)).toBe(200);
      expect(hook.body.port).toBe(8080);
      const update = (id: number, text: string) =>
        JSON.stringify({ update_id: id, message: { chat: { id: 42 }, text } });
      const answer = await poll("the bot's answer", async () => {
        const got = await deliver(hook.body.path, update(1, "hi"));
        return got.status === 200 ? got : undefined;
      });
      expect(JSON.parse(answer.text)).toEqual({ method: "sendMessage", chat_id: 42, text: "You said: hi" });
      expect(answer.type).toBe("application/json");
      // Telegram's secret_token header, with the path after hook/ passed on as is.
      const prefix = hook.body.path.slice(0, hook.body.path.lastIndexOf("/"));
      const viaHeader = await deliver(`${prefix}/telegram`, update(2, "there"), {
        "x-telegram-bot-api-secret-token": hook.body.secret,
      });
      expect(viaHeader.status, viaHeader.text).toBe(200);
      expect(JSON.parse(viaHeader.text).text).toBe("You said: there");
      await poll("the bot's line for update 2", async () => {
        const got = await api<{ lines: { text: string }[] }>(
          server.url,
          "GET",
          "/api/bots/echo/logs",
          undefined,
          acme,
        );
        return got.body.lines.some((line) => line.text === "update 2 on /telegram") ? true : undefined;
      });

      // Attacks: no secret, a wrong one, the right one on another id, too big a body.
      expect((await deliver(`${prefix}/`, update(900, "x"))).status).toBe(401);
      expect((await deliver(`${prefix}/not-the-secret`, update(901, "x"))).status).toBe(404);
      expect(
        (await deliver(`${prefix}/x`, update(902, "x"), { "x-runyard-hook-secret": "wrong" })).status,
      ).toBe(404);
      expect(
        (await deliver(`/api/bots/bot_nonexistent/hook/${hook.body.secret}`, update(903, "x"))).status,
      ).toBe(404);
      const big = await deliver(hook.body.path, Buffer.alloc(1024 * 1024 + 10, 0x61));
      expect(big.status).toBe(413);
      // A member of another tenant learns nothing of it either.
      expect((await bots(globex, "/api/bots/echo/webhook")).status).toBe(404);
      // The bot's versions name its webhook's port, never its secret (its own route gives that).
      const versions = await api<{ versions: Array<{ summary: Record<string, unknown> }> }>(
        server.url,
        "GET",
        "/api/bots/echo/versions",
        undefined,
        acme,
      );
      expect(versions.status).toBe(200);
      expect(versions.body.versions.at(-1)?.summary.webhook).toEqual({ port: 8080 });
      expect(JSON.stringify(versions.body)).not.toContain(hook.body.secret);
      const lines = await api<{ lines: { text: string }[] }>(
        server.url,
        "GET",
        "/api/bots/echo/logs",
        undefined,
        acme,
      );
      const forwarded = lines.body.lines
        .map((line) => line.text)
        .filter((text) => text.startsWith("update "));
      expect(forwarded).toEqual(["update 1 on /", "update 2 on /telegram"]);
    }, 180_000);

    it("keeps the bot's 5 s samples (memory against its limit, pids) for stats by API and CLI; another tenant reads none", async () => {
      const stats = await poll("three samples", async () => {
        const got = await api<Stats>(server.url, "GET", "/api/bots/echo/stats?since=1h", undefined, acme);
        expect(got.status, JSON.stringify(got.body)).toBe(200);
        return got.body.samples.length >= 3 ? got.body : undefined;
      });
      expect(stats.resolution_secs).toBe(5);
      const last = stats.samples.at(-1)!;
      expect(last.memory_limit_bytes).toBe(64 * 1024 * 1024);
      expect(last.memory_bytes).toBeGreaterThan(12 * 1024 * 1024);
      expect(last.pids).toBeGreaterThan(0);
      const day = await api<Stats>(server.url, "GET", "/api/bots/echo/stats?since=24h", undefined, acme);
      expect(day.body.resolution_secs).toBe(60);
      const bad = await api<{ error: { code: string } }>(
        server.url,
        "GET",
        "/api/bots/echo/stats?since=soon",
        undefined,
        acme,
      );
      expect(bad.status).toBe(400);
      expect((await bots(globex, "/api/bots/echo/stats")).status).toBe(404);
      const cli = await runCli(["bot", "stats", "echo", "--since", "10m"], {
        env: { RUNYARD_SERVER_URL: server.url, RUNYARD_TOKEN: acme },
      });
      expect(cli.code, cli.stderr).toBe(0);
      expect(cli.stdout).toMatch(/TIME\s+CPU\s+MEMORY\s+LIMIT/);
      expect(cli.stdout).toContain("64.0 MiB");
      const metrics = await fetch(new URL("/metrics", server.url), {
        headers: { authorization: `Bearer ${adminToken}` },
      });
      const text = await metrics.text();
      expect(text).toMatch(
        /runyard_bot_memory_bytes\{bot_id="bot_[^"]+",bot="echo",tenant="acme"[^}]*\} \d+/,
      );
    }, 180_000);

    it("calls the notify URL once when memory stays over its alert, and lists the episode", async () => {
      const notice = await firstNotice;
      expect(notice).toMatchObject({ type: "bot.alert", bot: "echo", kind: "memory", state: "running" });
      // Three more checks of the leader pass (samples keep coming) and the episode holds: no second call.
      const seen = (await api<Stats>(server.url, "GET", "/api/bots/echo/stats", undefined, acme)).body.samples
        .length;
      await poll("three more samples", async () => {
        const now = (await api<Stats>(server.url, "GET", "/api/bots/echo/stats", undefined, acme)).body
          .samples.length;
        return now >= seen + 3 ? now : undefined;
      });
      expect(notices).toHaveLength(1);
      const alerts = await api<{
        episodes: { kind: string; ended_at: string | null; notified_at: string | null }[];
      }>(server.url, "GET", "/api/bots/echo/alerts", undefined, acme);
      expect(alerts.body.episodes).toHaveLength(1);
      expect(alerts.body.episodes[0]).toMatchObject({ kind: "memory", ended_at: null });
      expect(alerts.body.episodes[0]!.notified_at).not.toBeNull();
      expect((await bots(globex, "/api/bots/echo/alerts")).status).toBe(404);
    }, 180_000);

    it("searches the logs by text and time, follows with --grep, and downloads the whole log from the runner, token masked; another tenant gets none", async () => {
      const grep = await api<{ lines: { text: string }[] }>(
        server.url,
        "GET",
        "/api/bots/echo/logs?grep=UPDATE%202",
        undefined,
        acme,
      );
      expect(grep.body.lines.map((line) => line.text)).toEqual(["update 2 on /telegram"]);
      const future = new Date(Date.now() + 3_600_000).toISOString();
      const none = await api<{ lines: unknown[] }>(
        server.url,
        "GET",
        `/api/bots/echo/logs?since=${encodeURIComponent(future)}`,
        undefined,
        acme,
      );
      expect(none.body.lines).toEqual([]);
      const env = { RUNYARD_SERVER_URL: server.url, RUNYARD_TOKEN: acme };
      const cli = await runCli(["bot", "logs", "echo", "--since", "2h", "--grep", "token"], { env });
      expect(cli.code, cli.stderr).toBe(0);
      expect(cli.stdout.trim().split("\n")).toEqual(["token ***"]);
      // --follow with --grep prints a new matching line as it comes, and no other.
      let followed = "";
      const follow = runCli(["bot", "logs", "echo", "--since", "2h", "--grep", "update 7", "-f"], {
        env,
        onStdout: (chunk, child) => {
          followed += chunk;
          if (followed.includes("update 7 on /later")) child.kill("SIGINT");
        },
      });
      const hook = await api<{ path: string; secret: string }>(
        server.url,
        "GET",
        "/api/bots/echo/webhook",
        undefined,
        acme,
      );
      const prefix = hook.body.path.slice(0, hook.body.path.lastIndexOf("/"));
      const later = await deliver(
        `${prefix}/later`,
        JSON.stringify({ update_id: 7, message: { chat: { id: 1 }, text: "x" } }),
        {
          "x-runyard-hook-secret": hook.body.secret,
        },
      );
      // (Once in a full run the runner's socket closed during this call: 502 "went away". What
      // the runners said is in the message, so the next such failure says why.)
      expect(later.status, `${later.text}\n${runners.map((r) => r.output().slice(-2000)).join("\n")}`).toBe(
        200,
      );
      await follow;
      expect(followed.trim().split("\n")).toEqual(["update 7 on /later"]);

      const file = join(tempDir(), "echo.log");
      const download = await runCli(["bot", "logs", "echo", "--download", file], { env });
      expect(download.code, download.stderr).toBe(0);
      const whole = readFileSync(file, "utf8");
      expect(whole).toMatch(/^\S+ stdout token \*\*\*$/m);
      expect(whole).toContain("update 2 on /telegram");
      expect(whole).not.toContain(botToken);
      expect((await bots(globex, "/api/bots/echo/logs/download")).status).toBe(404);
      expect((await bots(globex, "/api/bots/echo/logs")).status).toBe(404);
    }, 180_000);

    it("refuses bad alert and webhook input with what to write instead", async () => {
      const env = { RUNYARD_SERVER_URL: server.url, RUNYARD_TOKEN: acme };
      const badAlert = await runCli(
        ["bot", "start", "x", "--image", "busybox", "--alert", "memory>150%", "--notify", receiverUrl],
        { env },
      );
      expect(badAlert.code).not.toBe(0);
      expect(badAlert.stderr).toContain("memory percent is above 0 and at most 100");
      const noNotify = await runCli(["bot", "start", "x", "--image", "busybox", "--alert", "unhealthy"], {
        env,
      });
      expect(noNotify.stderr).toContain("--notify");
      const badPort = await api<{ error: { message: string } }>(
        server.url,
        "POST",
        "/api/bots",
        { name: "x", image: "busybox:1", webhook_port: 70_000 },
        acme,
      );
      expect(badPort.status).toBe(400);
      expect(JSON.stringify(badPort.body)).toContain("webhook_port is a port number");
      // A notify URL the server's notify_hosts does not list is refused before anything is stored.
      const internal = await api<{ error: { code: string } }>(
        server.url,
        "POST",
        "/api/bots",
        { name: "x", image: "busybox:1", alerts: [{ kind: "unhealthy" }], notify: ["http://10.1.2.3/hook"] },
        acme,
      );
      expect(internal.status).toBe(400);
      expect(internal.body.error.code).toBe("DESTINATION_NOT_ALLOWED");
    }, 60_000);
  },
);

export type { BotView };
