import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchBrowser, logIn, requireBrowser, screenshot, startUp, type Up } from "../helpers/browser.js";
import { api, isFinal, waitForRun } from "../helpers/server.js";

/**
 * The Run page's submit through a database outage and a lost answer, in a real browser against a
 * real `runyard up` behind a small HTTP front: the first `POST /api/runs` is answered 503 with
 * Retry-After (as a server whose database is away answers), the second reaches the server and
 * its answer is cut off. The page says it sends again, sends the same Idempotency-Key each time,
 * and the run exists once.
 */

const haveBrowser = requireBrowser();
let up: Up;
let browser: Browser;

interface Front {
  url: string;
  /** The Idempotency-Key of each `POST /api/runs` the front saw, in order. */
  keys: string[];
  close: () => Promise<void>;
}

async function startFront(target: string): Promise<Front> {
  const upstream = new URL(target);
  const keys: string[] = [];
  const forward = (req: IncomingMessage, res: ServerResponse, onAnswer?: () => void): void => {
    const out = httpRequest(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
      },
      (answer) => {
        if (onAnswer) return onAnswer();
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        res.flushHeaders();
        answer.pipe(res);
      },
    );
    out.on("error", () => res.destroy());
    req.pipe(out);
  };
  const front: Server = createServer((req, res) => {
    if (req.method !== "POST" || req.url !== "/api/runs") return forward(req, res);
    keys.push(String(req.headers["idempotency-key"]));
    if (keys.length === 1) {
      req.resume();
      res.writeHead(503, { "content-type": "application/json", "retry-after": "1" });
      res.end(
        JSON.stringify({
          error: { code: "STORE_UNAVAILABLE", message: "the database cannot be reached", hint: "Wait." },
        }),
      );
      return;
    }
    // The server stores the run and answers; the answer never reaches the browser.
    if (keys.length === 2) return forward(req, res, () => res.socket?.destroy());
    forward(req, res);
  });
  await new Promise<void>((resolve) => front.listen(0, "127.0.0.1", resolve));
  const address = front.address();
  return {
    url: `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`,
    keys,
    close: () =>
      new Promise((resolve) => {
        front.closeAllConnections();
        front.close(() => resolve());
      }),
  };
}

describe.skipIf(!haveBrowser)("the Run page's submit", () => {
  beforeAll(async () => {
    [up, browser] = await Promise.all([startUp(), launchBrowser()]);
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await up?.proc.kill();
  });

  it("is sent again with the same Idempotency-Key after a 503 and a lost answer, says so, and runs once", async () => {
    const front = await startFront(up.url);
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    try {
      await logIn(page, front.url);
      await page.goto(`${front.url}/#/run`);
      await page.getByText("✓ Valid: demo").waitFor();
      await page.getByRole("button", { name: "Run", exact: true }).click();
      const notice = page.getByRole("status").filter({ hasText: "Sending again" });
      await notice.waitFor();
      expect(await notice.textContent()).toContain(
        "Sending again in 1 s (attempt 2): the server answered 503 STORE_UNAVAILABLE: the database cannot be reached",
      );
      await screenshot(page, "web-submit-retry");
      await page.waitForURL((url) => /#\/runs\/run_/.test(url.hash), { timeout: 30_000 });
      await expect.poll(() => notice.count()).toBe(0);
      const runId = decodeURIComponent(new URL(page.url()).hash.split("/").pop() ?? "");
      expect(front.keys.length).toBeGreaterThanOrEqual(3);
      expect(front.keys[0]).toMatch(/^[0-9a-f]{32}$/);
      expect(new Set(front.keys)).toEqual(new Set([front.keys[0]]));
      const { body } = await api<{ runs: Array<{ run_id: string }> }>(up.url, "GET", "/api/runs");
      expect(body.runs.map((run) => run.run_id)).toEqual([runId]);
      expect((await waitForRun(up.url, runId, isFinal, 60_000)).status).toBe("success");
    } finally {
      await page.close();
      await front.close();
    }
  }, 90_000);
});
