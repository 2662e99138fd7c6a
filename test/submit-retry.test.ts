import { createServer, type Server, Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseEvents, runCli, tempDir, writeWorkflow } from "./helpers/cli.js";
import {
  adminToken,
  api,
  type Proc,
  runnerToken,
  startRunner,
  startTestServer,
  type TestServer,
} from "./helpers/server.js";

/**
 * The CLI's submits through a server restart or a database outage, as a user meets them: a real
 * server behind a small TCP front that answers the first submits 503 (as a server whose database
 * is away does), or cuts the connection after the server took the submit and before its answer
 * reached the CLI. The CLI sends the submit again with the same Idempotency-Key, and the run
 * exists once.
 */

let server: TestServer;
let runner: Proc;

beforeAll(async () => {
  server = await startTestServer(tempDir());
  runner = await startRunner(server.url, await runnerToken(server.url), { id: "retry-runner" });
});

afterAll(async () => {
  await runner?.kill();
  await server?.proc.kill();
});

const workflow = (name: string): string =>
  `version: v0.1\nname: ${name}\ninventory:\n  hosts:\n    local: {}\nsteps:\n  - name: hello\n    targets: [local]\n    action: cmd.run\n    args:\n      cmd: echo landed once\n`;

/** What the front does with a connection whose first request is a submit (`POST /api/runs`). */
type SubmitMischief = "unavailable" | "drop-answer";

interface Front {
  url: string;
  /** Submits the front has meddled with. */
  meddled: () => number;
  close: () => Promise<void>;
}

const unavailableAnswer = (): string => {
  const body = JSON.stringify({
    error: {
      code: "STORE_UNAVAILABLE",
      message: "the database cannot be reached",
      hint: "Try again in a moment.",
    },
  });
  return `HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
};

/**
 * A TCP front for the server: every connection is piped to it, but the first `times` connections
 * that open with `POST /api/runs` get `mischief` instead: a 503 with Retry-After (the server
 * never sees the submit), or the submit passed on and the connection cut as its answer comes back.
 */
async function startFront(target: string, mischief: SubmitMischief, times: number): Promise<Front> {
  const port = Number(new URL(target).port);
  let meddled = 0;
  const sockets = new Set<Socket>();
  const front: Server = createServer((client) => {
    sockets.add(client);
    client.on("close", () => sockets.delete(client));
    client.on("error", () => client.destroy());
    client.once("data", (first: Buffer) => {
      const submit = first.toString("latin1").startsWith("POST /api/runs ");
      if (submit && meddled < times && mischief === "unavailable") {
        meddled += 1;
        client.end(unavailableAnswer());
        return;
      }
      const upstream = new Socket();
      sockets.add(upstream);
      upstream.on("close", () => sockets.delete(upstream));
      upstream.on("error", () => client.destroy());
      upstream.connect(port, "127.0.0.1", () => upstream.write(first));
      if (submit && meddled < times && mischief === "drop-answer") {
        meddled += 1;
        client.on("data", (chunk) => upstream.write(chunk));
        // The server has taken the submit and answers it: the answer never reaches the CLI.
        upstream.once("data", () => {
          client.resetAndDestroy();
          upstream.destroy();
        });
        return;
      }
      client.pipe(upstream).pipe(client);
    });
  });
  await new Promise<void>((resolve) => front.listen(0, "127.0.0.1", resolve));
  const address = front.address();
  const frontPort = typeof address === "object" && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${frontPort}`,
    meddled: () => meddled,
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        front.close(() => resolve());
      }),
  };
}

async function runsNamed(name: string): Promise<Array<{ run_id: string; status: string }>> {
  const { body } = await api<{ runs: Array<{ run_id: string; name: string; status: string }> }>(
    server.url,
    "GET",
    "/api/runs?limit=500",
  );
  return body.runs.filter((run) => run.name === name);
}

const cliEnv = { RUNYARD_TOKEN: adminToken, RUNYARD_HOME: tempDir() };

describe("runyard run --server, when a submit is not answered", () => {
  it("sends it again after a 503, waiting Retry-After, says so on stderr, and the run exists once", async () => {
    const front = await startFront(server.url, "unavailable", 2);
    try {
      const file = writeWorkflow(workflow("after-503"));
      const started = Date.now();
      const result = await runCli(["run", file, "--server", front.url, "--json"], { env: cliEnv });
      expect(result.code, result.stderr).toBe(0);
      expect(front.meddled()).toBe(2);
      expect(Date.now() - started).toBeGreaterThanOrEqual(2000);
      expect(result.stderr).toContain(
        "retrying POST /api/runs in 1s (attempt 2, same Idempotency-Key): the server answered 503 STORE_UNAVAILABLE: the database cannot be reached",
      );
      expect(result.stderr).toContain("retrying POST /api/runs in 1s (attempt 3, same Idempotency-Key)");
      // stdout stays the run's events, one JSON object a line.
      const events = parseEvents(result.stdout);
      expect(events.at(-1)).toMatchObject({ type: "run.finished", status: "success" });
      const runs = await runsNamed("after-503");
      expect(runs).toEqual([expect.objectContaining({ run_id: events[0]?.run_id, status: "success" })]);
    } finally {
      await front.close();
    }
  });

  it("sends it again after the connection closed unanswered, and gets the run it made, not a second one", async () => {
    const front = await startFront(server.url, "drop-answer", 1);
    try {
      const file = writeWorkflow(workflow("after-drop"));
      const result = await runCli(["run", file, "--server", front.url, "--json"], { env: cliEnv });
      expect(result.code, result.stderr).toBe(0);
      expect(front.meddled()).toBe(1);
      expect(result.stderr).toMatch(
        /retrying POST \/api\/runs in [\d.]+s \(attempt 2, same Idempotency-Key\): the connection (was reset|closed before an answer)/,
      );
      const events = parseEvents(result.stdout);
      expect(events.at(-1)).toMatchObject({ type: "run.finished", status: "success" });
      const runs = await runsNamed("after-drop");
      expect(runs).toHaveLength(1);
      expect(runs[0]?.run_id).toBe(events[0]?.run_id);
    } finally {
      await front.close();
    }
  });

  it("gives up after --retry-for with the last error, having created nothing", async () => {
    const front = await startFront(server.url, "unavailable", 100);
    try {
      const file = writeWorkflow(workflow("never-landed"));
      const started = Date.now();
      const result = await runCli(["run", file, "--server", front.url, "--json", "--retry-for", "2s"], {
        env: cliEnv,
      });
      expect(result.code).not.toBe(0);
      // Against the 120 s a submit is retried by default (the flag ignored); counted from the CLI's
      // spawn, whose start-up alone takes seconds on a loaded machine.
      expect(Date.now() - started).toBeLessThan(40_000);
      expect(result.stdout).toBe("");
      expect(result.stderr).toMatch(
        /giving up on POST \/api\/runs after \d+ attempts in [\d.]+s \(--retry-for 2s\)/,
      );
      expect(result.stderr).toContain("error: the database cannot be reached");
      expect(await runsNamed("never-landed")).toEqual([]);
    } finally {
      await front.close();
    }
  });

  it("gives up on answers lost every time, saying the run may exist, and it exists once", async () => {
    const front = await startFront(server.url, "drop-answer", 100);
    try {
      const file = writeWorkflow(workflow("answer-lost"));
      // A window room for a second attempt after a first that a loaded machine may take over a
      // second to answer (1 s was once too short for it).
      const result = await runCli(["run", file, "--server", front.url, "--retry-for", "4s"], { env: cliEnv });
      expect(result.code).not.toBe(0);
      expect(front.meddled()).toBeGreaterThanOrEqual(2);
      expect(result.stderr).toMatch(
        /error: POST \/api\/runs got no answer from http:\/\/127\.0\.0\.1:\d+: the connection/,
      );
      expect(result.stderr).toContain("hint: The server may have taken it before the connection dropped");
      expect(await runsNamed("answer-lost")).toHaveLength(1);
    } finally {
      await front.close();
    }
  });

  it("sends once with --retry-for 0", async () => {
    const front = await startFront(server.url, "unavailable", 100);
    try {
      const file = writeWorkflow(workflow("sent-once"));
      const result = await runCli(["run", file, "--server", front.url, "--retry-for", "0"], { env: cliEnv });
      expect(result.code).not.toBe(0);
      expect(front.meddled()).toBe(1);
      expect(result.stderr).not.toContain("retrying");
    } finally {
      await front.close();
    }
  });

  it("refuses a --retry-for that is no duration, naming the flag", async () => {
    const result = await runCli(["run", "flow.yaml", "--server", server.url, "--retry-for", "soon"], {
      env: cliEnv,
    });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("--retry-for");
    expect(result.stderr).toContain("expected a duration such as 2m, 90s, 500ms or 0");
  });
});
