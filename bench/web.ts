import type { ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { chromium } from "playwright-core";
import { admin, runnerProcess, serverProcess, submit } from "./server.js";
import type { BenchResult } from "./table.js";

/** Debian's chromium, as the web UI tests use it; the row is skipped without it. */
const chromiumPath = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find((path) => existsSync(path));
const webDir = join(import.meta.dirname, "..", "..", "dist", "web");
/** Issue 11: the first page loads under 200 KB of JavaScript gzipped. */
const firstPageBudget = 200 * 1024;
/** `seq 1 12500000`: 101,388,895 bytes of output, one number a line. */
const lastLine = 12_500_000;
const rounds = 3;

const median = (values: number[]): number =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;

/** The gzipped bytes of the JavaScript index.html loads before any page: its entry and preloads. */
export function firstPageScriptBytes(dir = webDir): number {
  const html = readFileSync(join(dir, "index.html"), "utf8");
  const scripts = [...html.matchAll(/(?:src|href)="\/ui\/([^"]+\.js)"/g)].map((match) => match[1]!);
  return scripts.reduce((sum, file) => sum + gzipSync(readFileSync(join(dir, file))).length, 0);
}

async function waitForFinish(url: string, runId: string): Promise<string> {
  const deadline = Date.now() + 300_000;
  for (;;) {
    const response = await fetch(`${url}/api/runs/${runId}`, {
      headers: { authorization: `Bearer ${admin}` },
    });
    const run = (await response.json()) as { status: string; finished_at: string | null };
    if (run.finished_at) return run.status;
    if (Date.now() > deadline) throw new Error(`run ${runId} did not finish in 5 minutes`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/**
 * A finished run with 100 MB of output: the time from opening its page to its last line shown
 * in the terminal, against fetching its raw log (`GET /api/runs/:id/log`) in the same browser;
 * and the first page's JavaScript, gzipped, against the 200 KB budget.
 */
export async function webHugeLog(): Promise<BenchResult[]> {
  const results: BenchResult[] = [];
  if (!existsSync(join(webDir, "index.html"))) return [{ skipped: "web: no dist/web (npm run build)" }];
  const bundle = firstPageScriptBytes();
  results.push({
    name: "web: first page's JavaScript (gzip)",
    measured: `${(bundle / 1024).toFixed(1)} KB`,
    baseline: `${firstPageBudget / 1024} KB budget`,
    ratio: bundle / firstPageBudget,
    target: "<= 1",
    note: "the entry and preloaded scripts of dist/web/index.html, gzipped (issue 11: under 200 KB)",
  });
  if (!chromiumPath) return [...results, { skipped: "web: no chromium at /usr/bin/chromium" }];

  let server: ChildProcess | undefined;
  let runner: ChildProcess | undefined;
  const browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
  try {
    const started = await serverProcess();
    server = started.child;
    runner = await runnerProcess(started.url, started.runnerToken);
    const { url } = started;
    const runId = await submit(
      url,
      `name: big-log\nsteps:\n  - name: print\n    action: cmd.run\n    args:\n      cmd: seq 1 ${lastLine}\n`,
    );
    const status = await waitForFinish(url, runId);
    if (status !== "success") throw new Error(`the 100 MB run ended ${status}`);

    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    await context.addInitScript(
      (token) =>
        (
          globalThis as unknown as { sessionStorage: { setItem(key: string, value: string): void } }
        ).sessionStorage.setItem("runyard.token", token),
      admin,
    );
    const page = await context.newPage();
    // Once, so both measures below find the browser's cache and connections warm alike.
    await page.goto(`${url}/#/runs`);
    await page.getByRole("navigation", { name: "Sections" }).waitFor();

    const pageTimes: number[] = [];
    const rawTimes: number[] = [];
    for (let round = 0; round < rounds; round++) {
      await page.goto("about:blank");
      const opened = performance.now();
      await page.goto(`${url}/#/runs/${encodeURIComponent(runId)}`);
      await page.waitForFunction(
        (wanted) => {
          type Buffer = {
            length: number;
            getLine(row: number): { translateToString(trim: boolean): string } | undefined;
          };
          const element = (
            globalThis as unknown as {
              document: { querySelector(s: string): { terminal?: { buffer: { active: Buffer } } } | null };
            }
          ).document.querySelector('[data-testid="terminal"]');
          const buffer = element?.terminal?.buffer.active;
          if (!buffer) return false;
          for (let row = buffer.length - 1; row >= Math.max(0, buffer.length - 100); row--)
            if (buffer.getLine(row)?.translateToString(true) === wanted) return true;
          return false;
        },
        String(lastLine),
        { timeout: 120_000, polling: "raf" },
      );
      pageTimes.push(performance.now() - opened);

      const fetched = performance.now();
      const bytes = await page.evaluate(
        async (path) => {
          const response = await fetch(path);
          return (await response.arrayBuffer()).byteLength;
        },
        `/api/runs/${encodeURIComponent(runId)}/log?access_token=${admin}`,
      );
      rawTimes.push(performance.now() - fetched);
      if (bytes < 100_000_000) throw new Error(`the raw log had ${bytes} bytes`);
    }
    const shown = median(pageTimes);
    const raw = median(rawTimes);
    results.push({
      name: "web: 100 MB run's page to its last line",
      measured: `${shown.toFixed(0)} ms`,
      baseline: `${raw.toFixed(0)} ms raw log`,
      ratio: shown / raw,
      target: "<= 1",
      note: `a finished run of ${lastLine.toLocaleString("en")} lines (101 MB): opening #/runs/<id> until xterm shows the last line, against fetching GET /api/runs/<id>/log whole in the same chromium (over loopback, the raw download's best case); median of ${rounds}`,
    });
  } finally {
    await browser.close();
    runner?.kill("SIGTERM");
    server?.kill("SIGTERM");
  }
  return results;
}
