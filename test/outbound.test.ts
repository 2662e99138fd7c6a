import { writeFileSync } from "node:fs";
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { createServer as createTcpServer, type Server as TcpServer } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RunEvent } from "../src/core/events.js";
import { tempDir } from "./helpers/cli.js";
import { adminToken, api, freePort, isFinal, type Proc, type RunView, startCli } from "./helpers/server.js";

/** What the direct-host client holds a failure back for at least (src/direct/client.ts). */
const failureFloorMs = 12_000;

interface Recorder {
  url: string;
  requests: string[];
  close: () => Promise<void>;
}

/**
 * A tiny HTTP server on a loopback address that records every request; `/fail...` answers 500
 * with a JSON error whose message is "SECRET-BODY", as an internal service might.
 */
async function startRecorder(host = "127.0.0.1"): Promise<Recorder> {
  const requests: string[] = [];
  const server: HttpServer = createHttpServer((request, response) => {
    requests.push(`${request.method} ${request.url}`);
    request.resume();
    request.on("end", () => {
      if (request.url?.startsWith("/fail")) {
        response.writeHead(500, { "content-type": "application/json" });
        response.end(JSON.stringify({ error: { code: "INTERNAL", message: "SECRET-BODY" } }));
      } else {
        response.end("ok");
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    url: `http://${host}:${port}`,
    requests,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** An open port that answers every connection with garbage and hangs up. */
async function startGarbage(host: string): Promise<{ port: number; server: TcpServer }> {
  const server = createTcpServer((socket) => {
    socket.on("error", () => undefined);
    socket.end("SSH-2.0-garbage\r\n\r\n");
    socket.destroySoon();
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const address = server.address();
  return { port: typeof address === "object" && address ? address.port : 0, server };
}

function freePortOn(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createTcpServer();
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
    server.on("error", reject);
  });
}

function directWorkflow(address: string, extra = ""): string {
  return `name: outbound
inventory:
  hosts:
    far: { address: "${address}", token: agent-token }
${extra}steps:
  - name: hello
    targets: [far]
    action: shell.run
    args: { script: "echo hello-from-agent-server" }
`;
}

async function until<T>(what: string, read: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

let server: Proc;
let serverUrl: string;
let agentServer: Proc;
let agentUrl: string;
let listed: Recorder;
let unlisted: Recorder;
let garbage: { port: number; server: TcpServer };
let closedPort: number;
let member: string;
let outsider: string;

async function token(body: Record<string, unknown>): Promise<string> {
  const { status, body: made } = await api<{ token: string }>(serverUrl, "POST", "/api/tokens", body);
  expect(status).toBe(201);
  return made.token;
}

async function submitAs(tokenValue: string, workflow: string) {
  return api<{ run_id: string; error?: { code: string; message: string; hint: string } }>(
    serverUrl,
    "POST",
    "/api/runs",
    { kind: "workflow", workflow },
    tokenValue,
  );
}

async function finishedRun(runId: string, tokenValue: string): Promise<RunView> {
  return until(`run ${runId} to end`, async () => {
    const { body } = await api<RunView>(serverUrl, "GET", `/api/runs/${runId}`, undefined, tokenValue);
    return isFinal(body) ? body : undefined;
  });
}

async function eventsOf(runId: string, tokenValue: string): Promise<string> {
  const response = await fetch(new URL(`/api/runs/${runId}/events?access_token=${tokenValue}`, serverUrl));
  return response.text();
}

async function runCount(): Promise<number> {
  const { body } = await api<{ runs: unknown[] }>(serverUrl, "GET", "/api/runs?limit=200");
  return body.runs.length;
}

beforeAll(async () => {
  listed = await startRecorder();
  unlisted = await startRecorder();
  garbage = await startGarbage("127.0.0.2");
  closedPort = await freePortOn("127.0.0.2");
  const agentPort = await freePort();
  agentServer = startCli(["agent-server", "--addr", `127.0.0.1:${agentPort}`, "--token", "agent-token"], {
    RUNYARD_TOKEN: "",
  });
  agentUrl = `http://127.0.0.1:${agentPort}`;
  await agentServer.waitFor(`agent-server listening on ${agentUrl}`);

  const config = join(tempDir(), "runyard.yaml");
  writeFileSync(
    config,
    [
      "direct_hosts:",
      `  - "127.0.0.1:${agentPort}"`,
      `  - "${new URL(listed.url).host}"`,
      '  - "127.0.0.2/31"',
      "notify_hosts:",
      `  - "${new URL(listed.url).host}"`,
      "mcp_hosts:",
      '  - "10.9.8.7:8080"',
      "",
    ].join("\n"),
  );
  const port = await freePort();
  server = startCli(["server", "--port", String(port), "--memory", "--config", config], {
    RUNYARD_ADMIN_TOKEN: adminToken,
  });
  serverUrl = (await server.waitFor(/listening on http:\/\/[^\s]+/)).replace("listening on ", "");
  member = await token({ kind: "user", name: "member", tenant_id: "acme" });
  outsider = await token({ kind: "user", name: "outsider" });
}, 60_000);

afterAll(async () => {
  await server?.kill();
  await agentServer?.kill();
  await listed?.close();
  await unlisted?.close();
  await new Promise((resolve) => garbage?.server.close(resolve));
});

describe("outbound calls a member's run makes through the server", () => {
  it("refuses at submit a host address on an unlisted loopback port, for a tenant's member and a user outside any tenant, and calls nothing", async () => {
    const before = await runCount();
    const port = new URL(unlisted.url).port;
    for (const [who, tokenValue] of [
      ["member", member],
      ["outsider", outsider],
    ] as const) {
      for (const address of [
        `${unlisted.url}/internal/admin?x=`,
        `http://2130706433:${port}/`,
        `http://0x7f.1:${port}/`,
        `http://[::ffff:127.0.0.1]:${port}/`,
        `http://localhost:${port}/`,
      ]) {
        const { status, body } = await submitAs(tokenValue, directWorkflow(address));
        expect(status, `${who} ${address}`).toBe(400);
        expect(body.error?.code).toBe("DESTINATION_NOT_ALLOWED");
        expect(body.error?.message).toMatch(/loopback address.*`direct_hosts:` does not list/);
        expect(body.error?.hint).toContain("direct_hosts:");
      }
    }
    expect(unlisted.requests).toEqual([]);
    expect(await runCount()).toBe(before);
  });

  it("refuses at submit a notify URL on an unlisted loopback port, and calls nothing", async () => {
    const before = await runCount();
    const { status, body } = await submitAs(
      member,
      directWorkflow(agentUrl, `notify: "${unlisted.url}/hook"\n`),
    );
    expect(status).toBe(400);
    expect(body.error?.code).toBe("DESTINATION_NOT_ALLOWED");
    expect(body.error?.hint).toContain("notify_hosts:");
    expect(body.error?.message).toContain("`notify_hosts:`");
    expect(unlisted.requests).toEqual([]);
    expect(await runCount()).toBe(before);
  });

  it("runs a member's step on a direct host that direct_hosts: lists, and posts to a notify URL that notify_hosts: lists", async () => {
    const { status, body } = await submitAs(
      member,
      directWorkflow(agentUrl, `notify: "${listed.url}/hook"\n`),
    );
    expect(status).toBe(201);
    const run = await finishedRun(body.run_id, member);
    expect(run.status).toBe("success");
    expect(await eventsOf(body.run_id, member)).toContain("hello-from-agent-server");
    await until("the listed receiver to be told", async () =>
      listed.requests.filter((r) => r === "POST /hook").length >= 2 ? true : undefined,
    );
  });

  it("never shows a member what a listed destination answered: only DIRECT_HOST_FAILED with the status, and NOTIFY_FAILED", async () => {
    const { status, body } = await submitAs(
      member,
      directWorkflow(`${listed.url}/fail`, `notify: { url: "${listed.url}/fail-hook", retry: 0 }\n`),
    );
    expect(status).toBe(201);
    const runId = body.run_id;
    const run = await finishedRun(runId, member);
    expect(listed.requests).toContain("POST /fail/run");
    expect(run.status).toBe("failed");
    const statusView = await until("last_notify_error", async () => {
      const { body: view } = await api<Record<string, unknown>>(
        serverUrl,
        "GET",
        `/run-status?run_id=${runId}`,
        undefined,
        member,
      );
      return view.last_notify_error ? view : undefined;
    });
    expect(statusView.last_notify_error).toBe(
      "NOTIFY_FAILED: notify failed after 1 attempt: the receiver answered HTTP 500",
    );
    const events = await eventsOf(runId, member);
    const { body: record } = await api(serverUrl, "GET", `/api/runs/${runId}`, undefined, member);
    for (const seen of [events, JSON.stringify(record), JSON.stringify(statusView)]) {
      expect(seen).not.toContain("SECRET-BODY");
    }
    expect(events).toContain('"code":"DIRECT_HOST_FAILED"');
    expect(events).toContain("the agent-server answered HTTP 500");
  });

  it("gives the same error, no sooner than the failure floor, for an open port that answers garbage and a closed port", async () => {
    const targets = [`http://127.0.0.2:${garbage.port}`, `http://127.0.0.2:${closedPort}`];
    const outcomes = await Promise.all(
      targets.map(async (address) => {
        const startedAt = Date.now();
        const { status, body } = await submitAs(member, directWorkflow(address));
        expect(status).toBe(201);
        const run = await finishedRun(body.run_id, member);
        const elapsedMs = Date.now() - startedAt;
        const text = await eventsOf(body.run_id, member);
        const events = text
          .split("\n")
          .filter((line) => line.startsWith("data: "))
          .map((line) => RunEvent.parse(JSON.parse(line.slice(6))));
        const step = events.find((event) => event.type === "step.finished");
        if (step?.type !== "step.finished") throw new Error(`no step.finished in ${text}`);
        return { run, elapsedMs, error: step.error, durationMs: step.duration_ms };
      }),
    );
    const [open, closed] = outcomes;
    expect(open?.error).toEqual(closed?.error);
    expect(open?.error?.code).toBe("DIRECT_HOST_FAILED");
    expect(open?.error?.message).toBe("could not use the agent-server: no usable answer");
    expect(open?.run.error).toEqual(closed?.run.error);
    for (const outcome of outcomes) {
      expect(outcome.elapsedMs).toBeGreaterThanOrEqual(failureFloorMs);
      expect(outcome.durationMs).toBeGreaterThanOrEqual(failureFloorMs);
    }
  }, 60_000);

  it("does not restrict a platform admin's run: an unlisted loopback host is called", async () => {
    const own = await startRecorder();
    try {
      const { status, body } = await submitAs(adminToken, directWorkflow(`${own.url}/admin-side`));
      expect(status).toBe(201);
      await finishedRun(body.run_id, adminToken);
      expect(own.requests).toContain("POST /admin-side/run");
    } finally {
      await own.close();
    }
  });

  it("refuses at submit a member's MCP server URL on an internal address that mcp_hosts: does not list, naming the URL", async () => {
    const agentTask = (url: string, tokenValue: string) =>
      api<{ run_id: string; error?: { code: string; message: string; hint: string } }>(
        serverUrl,
        "POST",
        "/api/runs",
        { kind: "agent", agent: "claude_code", prompt: "read the docs", mcp_servers: { docs: { url } } },
        tokenValue,
      );
    const before = await runCount();
    for (const [who, tokenValue] of [
      ["member", member],
      ["outsider", outsider],
    ] as const) {
      for (const url of [
        `${unlisted.url}/mcp`,
        "http://localhost:3000/mcp",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.5:8080/mcp",
        "http://[fd00::1]/mcp",
        "http://10.9.8.7:9999/mcp",
      ]) {
        const { status, body } = await agentTask(url, tokenValue);
        expect(status, `${who} ${url}`).toBe(400);
        expect(body.error?.code).toBe("DESTINATION_NOT_ALLOWED");
        expect(body.error?.message).toContain(`mcp_servers.docs: ${JSON.stringify(url)}`);
        expect(body.error?.message).toContain("`mcp_hosts:` does not list");
        expect(body.error?.hint).toContain("mcp_hosts:");
      }
    }
    expect(unlisted.requests).toEqual([]);
    expect(await runCount()).toBe(before);
    // A public-looking URL, and an internal one the operator lists, are taken (nothing connects at submit).
    for (const url of ["https://mcp.example.com/mcp", "http://10.9.8.7:8080/mcp"]) {
      const { status, body } = await agentTask(url, member);
      expect(status, JSON.stringify(body)).toBe(201);
    }
    // A platform admin's task may name any address, as her direct hosts may.
    expect((await agentTask(`${unlisted.url}/mcp`, adminToken)).status).toBe(201);
  });
});
