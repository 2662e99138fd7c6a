import { readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DockerEngine } from "../../src/exec/docker/docker-engine.js";
import { launchBrowser, logIn, requireBrowser, screenshot } from "../helpers/browser.js";
import { tempDir } from "../helpers/cli.js";
import {
  busyboxImage,
  removeBotObjects,
  removeTestObjects,
  requireDocker,
  testLabel,
  testRunLabel,
} from "../helpers/docker.js";
import { api, type Proc, startRunner, startTestServer, type TestServer } from "../helpers/server.js";

/**
 * The bot page's resource chart, alerts, log search and webhook in a real browser against a real
 * server and runner with Docker: the chart drawn from the runner's samples, a search that finds
 * one line, an alert that held (and was notified to a receiver on 127.0.0.1) listed, the webhook
 * URL with its secret masked; and the page of another tenant's member says not found.
 */

const haveBrowser = requireBrowser();
const haveDocker = await requireDocker();
const run = `web-bot-history-${process.pid}-${Date.now().toString(36)}`;
const needle = `needle-${run}`;
const engine = new DockerEngine();
let server: TestServer;
let runner: Proc;
let browser: Browser;
let image: string;
let receiver: Server;
let receiverUrl: string;
let acme: string;
let globex: string;
const botIds: string[] = [];

async function token(body: Record<string, string>): Promise<string> {
  const answer = await api<{ token: string }>(server.url, "POST", "/api/tokens", body);
  expect(answer.status, JSON.stringify(answer.body)).toBe(201);
  return answer.body.token;
}

/**
 * What sticks out of this page's sections past the right edge (nothing may: a phone must not
 * scroll sideways). Only these sections: the page's other parts are not this test's.
 */
function overflows(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    type El = {
      getBoundingClientRect(): { right: number };
      parentElement: El | null;
      tagName: string;
      className: string;
      getAttribute(name: string): string | null;
      querySelectorAll(selector: string): ArrayLike<El>;
    };
    const { document, getComputedStyle } = globalThis as unknown as {
      document: { documentElement: { clientWidth: number }; body: El; querySelector(s: string): El | null };
      getComputedStyle(element: El): { overflowX: string };
    };
    const width = document.documentElement.clientWidth;
    const sections = ["bot-resources", "bot-log-search", "bot-alerts", "bot-webhook"]
      .map((id) => document.querySelector(`section[aria-labelledby="${id}"]`))
      .filter((section) => section !== null);
    if (sections.length !== 4) return [`only ${sections.length} of the 4 sections shown`];
    return sections
      .flatMap((section) => [section, ...Array.from(section.querySelectorAll("*"))])
      .filter((el) => el.getBoundingClientRect().right > width + 1)
      .filter((el) => {
        // Inside a box that scrolls itself (a wide table's wrapper), sticking out is fine.
        for (let up = el.parentElement; up && up !== document.body; up = up.parentElement) {
          if (["auto", "scroll", "hidden"].includes(getComputedStyle(up).overflowX)) return false;
        }
        return true;
      })
      .map(
        (el) =>
          `${el.tagName.toLowerCase()}.${el.className}[${el.getAttribute("aria-label") ?? ""}] ${Math.round(el.getBoundingClientRect().right)}`,
      )
      .slice(0, 12);
  });
}

describe.skipIf(!haveBrowser || !haveDocker)(
  "the bot page's resources, alerts, log search and webhook",
  () => {
    beforeAll(async () => {
      receiver = createServer((request, response) => {
        request.resume();
        request.on("end", () => response.end("ok"));
      });
      await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
      const address = receiver.address();
      receiverUrl = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}/alerts`;

      const base = await busyboxImage();
      const dir = tempDir("runyard-web-bot-history-");
      const script = `trap "exit 0" TERM; echo ${needle}; n=0; while true; do n=$((n+1)); echo "tick $n"; sleep 1 & wait $!; done`;
      writeFileSync(join(dir, "Dockerfile"), `FROM ${base}\nCMD ["sh", "-c", ${JSON.stringify(script)}]\n`);
      image = `runyard-test-web-bot-history-${run}:1`;
      await engine.build(dir, image, () => {}, { [testLabel]: "1", [testRunLabel]: run });

      const home = tempDir("runyard-web-bot-history-home-");
      const config = join(home, "config.yaml");
      writeFileSync(config, "notify_hosts:\n  - 127.0.0.1\n");
      [server, browser] = await Promise.all([
        // The leader checks alerts each second (not each 5 s), and the runner samples each second.
        startTestServer(
          home,
          { RUNYARD_BOT_NETWORK: "none", RUNYARD_BOT_MEMORY_MB: "64", RUNYARD_BOT_ALERT_CHECK_SECS: "1" },
          undefined,
          ["--config", config],
        ),
        launchBrowser(),
      ]);
      acme = await token({ kind: "user", name: "alice", tenant_id: "acme" });
      globex = await token({ kind: "user", name: "mallory", tenant_id: "globex" });
      const runnerToken = await token({ kind: "runner", name: "acme runner", tenant_id: "acme" });
      runner = await startRunner(server.url, runnerToken, {
        id: `acme-${run}`,
        env: { RUNYARD_LOG_LEVEL: "error", RUNYARD_BOT_STATS_SECS: "1" },
      });
    }, 180_000);

    afterAll(async () => {
      await browser?.close();
      await runner?.kill();
      await server?.proc.kill();
      receiver?.close();
      await removeBotObjects(botIds);
      await removeTestObjects(run);
    });

    it("charts real samples, finds a line, lists an alert, masks the webhook; another tenant sees not found", async () => {
      const started = await api<{ bot: { id: string } }>(
        server.url,
        "POST",
        "/api/bots",
        {
          name: "watched",
          image,
          // Any process is over 0.01 % of 64 MiB: the alert holds from the first sample.
          alerts: [{ kind: "memory", above_percent: 0.01, for_secs: 0 }],
          notify: [receiverUrl],
          webhook_port: 8080,
        },
        acme,
      );
      expect(started.status, JSON.stringify(started.body)).toBe(202);
      botIds.push(started.body.bot.id);
      // The page's charts read the samples as it opens, then every 10 s: opened once the server
      // holds two (5 s apart), they draw them at once rather than at their next poll.
      const stored = async () =>
        (
          await api<{ samples?: unknown[] }>(
            server.url,
            "GET",
            "/api/bots/watched/stats?since=1h",
            undefined,
            acme,
          )
        ).body.samples?.length ?? 0;
      await expect.poll(stored, { timeout: 120_000, interval: 500 }).toBeGreaterThanOrEqual(2);

      const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
      await logIn(page, server.url, acme);
      await page.goto(`${server.url}#/bots/watched`);
      await page.getByTestId("bot-state").getByText("running").waitFor({ timeout: 120_000 });

      // The chart: drawn from the samples the runner sent (a second apart here), memory under its 64 MiB line.
      const chart = page.getByTestId("bot-memory-chart");
      await expect
        .poll(async () => Number((await chart.getAttribute("data-points").catch(() => null)) ?? 0), {
          timeout: 90_000,
          interval: 1000,
        })
        .toBeGreaterThanOrEqual(2);
      const stats = await api<{ samples: { memory_bytes: number; memory_limit_bytes: number | null }[] }>(
        server.url,
        "GET",
        "/api/bots/watched/stats?since=1h",
        undefined,
        acme,
      );
      expect(stats.body.samples.length).toBeGreaterThanOrEqual(2);
      expect(stats.body.samples.at(-1)!.memory_limit_bytes).toBe(64 * 1024 * 1024);
      const points = (await chart.locator("polyline").getAttribute("points"))!.trim().split(" ");
      expect(points.length).toBeGreaterThanOrEqual(2);
      expect(await chart.getAttribute("aria-label")).toContain("of 64.0 MiB");
      // 64 MiB is far above what busybox uses: the scale follows the use, the limit stays off it.
      expect(await chart.locator("line.limit").count()).toBe(0);
      await page.getByTestId("bot-cpu-chart").waitFor();
      // A day back: the page asks for it, and the server answers rows of a minute (none yet for
      // so young a bot, which the page says); back to the hour, the 5 s samples again.
      const [day] = await Promise.all([
        page.waitForResponse((r) => r.url().includes("/api/bots/watched/stats?since=24h"), {
          timeout: 30_000,
        }),
        page.getByRole("button", { name: "24h" }).click(),
      ]);
      expect(((await day.json()) as { resolution_secs: number }).resolution_secs).toBe(60);
      await page.locator('button[aria-pressed="true"]', { hasText: "24h" }).waitFor({ timeout: 30_000 });
      await page.getByRole("button", { name: "1h" }).click();
      await page.getByText("a point per 5 s").waitFor({ timeout: 30_000 });

      // The search: one line holds the needle (any case); a text no line holds finds none.
      const search = page.getByRole("form", { name: "Search the logs" });
      await search.getByLabel("Text").fill(needle.toUpperCase());
      await search.getByRole("button", { name: "Search" }).click();
      await page.getByTestId("bot-log-found").getByText("1 line").waitFor({ timeout: 30_000 });
      const found = page.getByRole("log", { name: "Found lines" });
      expect(await found.locator(".bot-log-text").allTextContents()).toEqual([needle]);
      expect(await found.locator("mark").allTextContents()).toEqual([needle]);
      await search.getByLabel("Text").fill(`absent-${run}`);
      await search.getByRole("button", { name: "Search" }).click();
      await page.getByTestId("bot-log-found").getByText("No line matches.").waitFor();

      // The whole log, saved as a file through the runner.
      const [download] = await Promise.all([
        page.waitForEvent("download"),
        search.getByRole("button", { name: "Download whole log" }).click(),
      ]);
      expect(download.suggestedFilename()).toBe("watched.log");
      const saved = join(tempDir("runyard-web-bot-log-"), "watched.log");
      await download.saveAs(saved);
      expect(readFileSync(saved, "utf8")).toContain(needle);

      // The alert: held from the first samples, told to the receiver.
      const alerts = page.getByRole("table", { name: "Alerts" });
      await alerts.getByText("memory", { exact: true }).waitFor({ timeout: 90_000 });
      await alerts.getByText("still holds").waitFor();
      await expect
        .poll(async () => (await alerts.locator("tbody tr td").nth(4).textContent()) ?? "", {
          timeout: 60_000,
        })
        .toMatch(/\d/);

      // The webhook: masked until shown; the shown URL is the API's.
      const hook = await api<{ path: string; secret: string }>(
        server.url,
        "GET",
        "/api/bots/watched/webhook",
        undefined,
        acme,
      );
      const url = page.getByTestId("bot-webhook-url");
      await url.waitFor();
      expect(await url.textContent()).not.toContain(hook.body.secret);
      expect(await url.textContent()).toContain("••••");
      await page.getByRole("button", { name: "Show secret" }).click();
      expect(await url.textContent()).toBe(`${server.url}${hook.body.path}`);
      await page.getByRole("button", { name: "Hide secret" }).click();
      expect(await url.textContent()).not.toContain(hook.body.secret);
      expect(await overflows(page)).toEqual([]);
      await screenshot(page, "bot-history");

      await page.setViewportSize({ width: 390, height: 844 });
      await page.getByTestId("bot-memory-chart").waitFor();
      expect(await overflows(page)).toEqual([]);
      await screenshot(page, "bot-history-phone");
      await page.close();

      // Another tenant's member: the same page says not found and shows none of the bot's parts.
      const other = await browser.newPage({ viewport: { width: 1280, height: 800 } });
      await logIn(other, server.url, globex);
      await other.goto(`${server.url}#/bots/watched`);
      await other.getByRole("alert").getByText("you have no bot named watched").waitFor({ timeout: 30_000 });
      expect(await other.getByTestId("bot-memory-chart").count()).toBe(0);
      expect(await other.getByTestId("bot-webhook-url").count()).toBe(0);
      expect(await other.content()).not.toContain(needle);
      expect(await other.content()).not.toContain(hook.body.secret);
      await other.close();
    }, 400_000);

    it("scales the charts to the bot's use, reads a point by pointer and keys, and marks its version change", async () => {
      type Stats = { samples: { at: string; memory_bytes: number }[] };
      const stats = async () =>
        (await api<Stats>(server.url, "GET", "/api/bots/charted/stats?since=1h", undefined, acme)).body
          .samples;
      const started = await api<{ bot: { id: string } }>(
        server.url,
        "POST",
        "/api/bots",
        {
          name: "charted",
          image,
          alerts: [{ kind: "memory", above_percent: 0.01, for_secs: 0 }],
          webhook_port: 8080,
        },
        acme,
      );
      expect(started.status, JSON.stringify(started.body)).toBe(202);
      botIds.push(started.body.bot.id);
      await expect
        .poll(async () => (await stats()).length, { timeout: 120_000, interval: 1000 })
        .toBeGreaterThanOrEqual(2);
      const updated = await api<{ version: { version: number; finished_at: string } }>(
        server.url,
        "POST",
        "/api/bots/charted/update",
        { env: { STEP: "2" }, min_ready_secs: 1 },
        acme,
      );
      expect(updated.status, JSON.stringify(updated.body)).toBe(200);
      const switched = Date.parse(updated.body.version.finished_at);
      // Samples of version 2 after the switch: the mark falls within the chart's span.
      await expect
        .poll(async () => (await stats()).filter((s) => Date.parse(s.at) > switched).length, {
          timeout: 90_000,
          interval: 1000,
        })
        .toBeGreaterThanOrEqual(2);
      const samples = await stats();
      const mib = (bytes: number) => bytes / 1024 / 1024;
      const shown = (bytes: number) =>
        bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(0)} KiB` : `${mib(bytes).toFixed(1)} MiB`;
      const afterSwitch = samples.findIndex((s) => Date.parse(s.at) > switched);

      const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
      await logIn(page, server.url, acme);
      await page.goto(`${server.url}#/bots/charted`);
      const figure = page.locator("figure.bot-chart", { has: page.getByTestId("bot-memory-chart") });
      const plot = page.getByTestId("bot-memory-chart");
      const readout = page.getByTestId("bot-memory-chart-readout");
      const topTick = async () => {
        const labels = await figure.locator(".chart-y span").allTextContents();
        return Number.parseFloat(labels.at(-1) ?? "NaN");
      };

      for (const viewport of [
        { width: 1280, height: 800 },
        { width: 390, height: 844 },
      ]) {
        await page.setViewportSize(viewport);
        // The version change and the alert, marked where they happened.
        const version = figure.locator('[data-testid="bot-chart-mark"][data-kind="version"]');
        await version.getByText("v2", { exact: true }).waitFor({ timeout: 60_000 });
        await figure.locator('[data-testid="bot-chart-mark"][data-kind="alert"]').first().waitFor();
        const left = Number.parseFloat(
          (await version.getAttribute("style"))?.match(/left:\s*([\d.]+)%/)?.[1] ?? "NaN",
        );
        expect(left).toBeGreaterThan(0);
        expect(left).toBeLessThan(100);
        await page
          .getByRole("list", { name: "Marks" })
          .getByText(/^version 2 \(update\)/)
          .waitFor();

        // The axis follows the use (well under a MiB for busybox), not the 64 MiB limit.
        const most = mib(Math.max(...samples.map((s) => s.memory_bytes)));
        expect(await topTick()).toBeGreaterThanOrEqual(most);
        expect(await topTick()).toBeLessThan(8);
        expect(await plot.locator("line.limit").count()).toBe(0);
        const toggle = page.getByRole("checkbox", { name: /Show the memory limit \(64\.0 MiB/ });
        await toggle.check();
        await expect.poll(() => plot.locator("line.limit").count()).toBe(1);
        expect(await topTick()).toBeGreaterThanOrEqual(64);
        await toggle.uncheck();
        await expect.poll(topTick).toBeLessThan(8);

        // The keyboard: focus reads the newest point, Home the first, the arrows the next ones.
        await plot.focus();
        await expect.poll(() => readout.textContent()).toMatch(/: \d/);
        await page.keyboard.press("Home");
        await expect.poll(() => readout.textContent()).toContain(`: ${shown(samples[0]!.memory_bytes)}`);
        for (let i = 0; i < afterSwitch; i++) await page.keyboard.press("ArrowRight");
        // The point's marks, after its figure: the alert may fall on the same point (a run found
        // "alert: memory, version 2 (update)" there).
        const atSwitch = shown(samples[afterSwitch]!.memory_bytes).replace(".", "\\.");
        await expect
          .poll(() => readout.textContent())
          .toMatch(new RegExp(`: ${atSwitch} · (?:[^·]+, )?version 2 \\(update\\)`));
        await figure.evaluate((chart) => chart.scrollIntoView({ block: "start" }));
        await screenshot(page, `bot-chart-readout-${viewport.width}`, "viewport");

        // The pointer: at the plot's left edge, the first point.
        await page.getByRole("heading", { name: "charted" }).click();
        const box = (await plot.boundingBox())!;
        await plot.hover({ position: { x: 1, y: box.height / 2 } });
        await expect.poll(() => readout.textContent()).toContain(`: ${shown(samples[0]!.memory_bytes)}`);
        await page.mouse.move(0, 0);
        expect(await overflows(page)).toEqual([]);
      }
      await page.close();
    }, 400_000);

    it("shows the tenant's alert rules on the bot page, inherited or overridden by the bot's own", async () => {
      const acmeAdmin = await token({ kind: "admin", name: "acme admin", tenant_id: "acme" });
      const set = await api(
        server.url,
        "PUT",
        "/api/bot-alerts/tenants/acme",
        {
          alerts: [{ kind: "unhealthy" }, { kind: "memory", above_percent: 50, for_secs: 300 }],
          notify: ["https://hooks.example.com/acme"],
        },
        acmeAdmin,
      );
      expect(set.status, JSON.stringify(set.body)).toBe(200);
      const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
      await logIn(page, server.url, acme);
      await page.goto(`${server.url}#/bots/watched`);
      const rules = page.getByRole("list", { name: "Tenant alert rules" });
      await rules.getByText("Inherited from the tenant: unhealthy").waitFor({ timeout: 30_000 });
      await rules
        .getByText("The tenant's memory over 50 % for 300 s: overridden by this bot's own memory alert")
        .waitFor();
      // The bot's own notify URL stays where its alerts go.
      const meta = page.locator('section[aria-labelledby="bot-alerts"] p.meta').first();
      expect(await meta.textContent()).toContain("unhealthy (inherited)");
      expect(await meta.textContent()).toContain(receiverUrl);
      expect(await meta.textContent()).not.toContain("hooks.example.com");
      expect(await overflows(page)).toEqual([]);
      await screenshot(page, "bot-tenant-alerts");
      await page.close();
      // Another tenant's member reads none of acme's rules.
      const other = await api(server.url, "GET", "/api/bot-alerts/tenants/acme", undefined, globex);
      expect(other.status).toBe(404);
    }, 120_000);
  },
);
