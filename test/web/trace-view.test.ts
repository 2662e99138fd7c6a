import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { extname, join } from "node:path";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchBrowser, requireBrowser, screenshot } from "../helpers/browser.js";
import { repoRoot, tempDir } from "../helpers/cli.js";
import { type OtlpReceiver, type ReceivedSpan, startOtlpReceiver } from "../helpers/otlp-receiver.js";
import {
  api,
  isFinal,
  type Proc,
  runnerToken,
  startRunner,
  startTestServer,
  type TestServer,
  waitForRun,
} from "../helpers/server.js";
import { speedscopeProfile } from "../helpers/trace-profile.js";

/**
 * A run's trace as a trace viewer draws it, for docs/observability.md: a real server exporting
 * over OTLP/HTTP to a scripted receiver, a real (sandboxed) runner, and the spans received drawn
 * by speedscope (a trace and profile viewer, from npm) in the run's Chromium.
 */

const haveBrowser = requireBrowser();
const viewer = join(repoRoot, "node_modules", "speedscope", "dist", "release");
const types: Record<string, string> = {
  ".html": "text/html",
  ".js": "text/javascript",
  ".css": "text/css",
  ".json": "application/json",
  ".wasm": "application/wasm",
};

let receiver: OtlpReceiver;
let server: TestServer;
let runner: Proc;
let browser: Browser;
let files: Server;
let profile = "{}";

const workflow = `name: release
steps:
  - name: build
    action: shell.run
    args: {script: "sleep 0.3; echo built"}
  - name: test
    retry_count: 1
    action: shell.run
    args:
      script: |
        test -f "$RUNYARD_RUN_ID.tested" && exit 0
        touch "$RUNYARD_RUN_ID.tested"; sleep 0.2; exit 1
  - name: ship
    action: workflow.call
    args: {workflow: deploy}
`;

describe.skipIf(!haveBrowser)("a run's trace in a trace viewer", () => {
  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    server = await startTestServer(tempDir(), {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
      OTEL_SERVICE_NAME: "runyard",
    });
    [runner, browser] = await Promise.all([
      runnerToken(server.url).then((token) => startRunner(server.url, token, { id: "runner-1" })),
      launchBrowser(),
    ]);
    const deploy = "name: deploy\nsteps:\n  - {name: roll, action: shell.run, args: {script: sleep 0.2}}\n";
    expect(
      (await api(server.url, "POST", "/api/workflows", { name: "deploy", workflow: deploy })).status,
    ).toBe(201);
    files = createServer((request, response) => {
      const path = new URL(request.url ?? "/", "http://x").pathname;
      if (path === "/trace.json") {
        response.writeHead(200, { "content-type": types[".json"] });
        response.end(profile);
        return;
      }
      try {
        const body = readFileSync(
          join(viewer, path.replace(/^\/+/, "").replace(/\.\./g, "") || "index.html"),
        );
        response.writeHead(200, { "content-type": types[extname(path)] ?? "application/octet-stream" });
        response.end(body);
      } catch {
        response.writeHead(404).end();
      }
    });
    await new Promise<void>((resolve) => files.listen(0, "127.0.0.1", resolve));
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await runner?.kill();
    await server?.proc.kill();
    await receiver?.close();
    await new Promise((resolve) => files?.close(resolve));
  });

  it("draws the submit, the run, each step attempt with the runner's part and the called run, nested on one time axis", async () => {
    const submitted = await api<{ run_id: string }>(server.url, "POST", "/api/runs", {
      kind: "workflow",
      workflow,
    });
    const runId = submitted.body.run_id;
    expect((await waitForRun(server.url, runId, isFinal, 90_000)).status).toBe("success");
    const spans = await receiver.waitFor((all) =>
      all.some((span) => span.attributes["runyard.run.id"] === runId && span.name === "run release"),
    );
    const traceId = spans.find((span) => span.attributes["runyard.run.id"] === runId)!.traceId;
    const called = (all: ReceivedSpan[]) => all.filter((span) => span.traceId === traceId);
    // The called run's span comes with its own run's end, which is before its caller's.
    const trace = called(
      await receiver.waitFor((all) => called(all).some((span) => span.name === "run deploy")),
    );
    const names = trace.map((span) => span.name);
    for (const name of [
      "POST /api/runs",
      "run release",
      "step build",
      "sandbox entry",
      "command",
      "run deploy",
    ])
      expect(names).toContain(name);
    expect(names.filter((name) => name === "step test")).toHaveLength(2);
    // From the run's span down: the submit that queued it ends long before it (a viewer of
    // stacks would stretch it over the whole run).
    const drawn = trace.filter((span) => span.name !== "POST /api/runs");
    profile = JSON.stringify(speedscopeProfile(drawn, `trace of run ${runId}`));

    const { port } = files.address() as AddressInfo;
    const base = `http://127.0.0.1:${port}`;
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await page.goto(`${base}/index.html#profileURL=${encodeURIComponent(`${base}/trace.json`)}`);
    // The viewer names the profile it drew in the page's title.
    await page.waitForFunction(
      (id) => (globalThis as unknown as { document: { title: string } }).document.title.includes(id),
      runId,
      { timeout: 30_000 },
    );
    await page.locator("canvas").first().waitFor();
    await screenshot(page, "observability-trace", "viewport");
    await page.close();
  }, 120_000);
});
