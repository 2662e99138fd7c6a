import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { tempDir } from "./helpers/cli.js";
import { createTestDatabase } from "./helpers/postgres.js";
import {
  adminToken,
  api,
  type Proc,
  runnerToken,
  startRunner,
  startTestServer,
  type TestServer,
} from "./helpers/server.js";

const adminUrl = inject("postgresAdminUrl");
const secretKey = "idempotency-replicas-secret-key-0123456789";

const workflow = (name: string): string =>
  `version: v0.1\nname: ${name}\ninventory:\n  hosts:\n    x: {group: nowhere}\nsteps:\n  - name: s\n    targets: [x]\n    action: cmd.run\n    args:\n      cmd: echo hi\n`;

interface Answer {
  status: number;
  replayed: string | null;
  // biome-ignore lint/suspicious/noExplicitAny: answers of several shapes
  body: any;
}

async function submit(url: string, key: string, name: string): Promise<Answer> {
  const response = await fetch(new URL("/api/runs", url), {
    method: "POST",
    headers: {
      authorization: `Bearer ${adminToken}`,
      "content-type": "application/json",
      "idempotency-key": key,
    },
    body: JSON.stringify({ kind: "workflow", workflow: workflow(name), vars: {} }),
  });
  return {
    status: response.status,
    replayed: response.headers.get("idempotency-replayed"),
    body: await response.json(),
  };
}

async function runsNamed(url: string, name: string): Promise<string[]> {
  const { body } = await api<{ runs: Array<{ run_id: string; name: string }> }>(
    url,
    "GET",
    "/api/runs?limit=500",
  );
  return body.runs.filter((run) => run.name === name).map((run) => run.run_id);
}

describe.skipIf(!adminUrl)("Idempotency-Key across two replicas on one PostgreSQL", () => {
  const replicas: TestServer[] = [];

  beforeAll(async () => {
    const env = { RUNYARD_DATABASE_URL: await createTestDatabase(adminUrl), RUNYARD_SECRET_KEY: secretKey };
    replicas.push(await startTestServer(tempDir(), env));
    replicas.push(await startTestServer(tempDir(), env));
  });

  afterAll(async () => {
    await Promise.all(replicas.map((replica) => replica.proc.kill()));
  });

  it("lets one of many requests racing with one key, on both replicas, create the run; the others wait or get its answer", async () => {
    const [a, b] = replicas as [TestServer, TestServer];
    const racing = await Promise.all(
      Array.from({ length: 16 }, (_, i) => submit(i % 2 === 0 ? a.url : b.url, "race-key", "raced")),
    );
    for (const answer of racing) {
      if (answer.status === 409) expect(answer.body.error.code).toBe("IDEMPOTENCY_KEY_IN_USE");
      else expect(answer.status, JSON.stringify(answer.body)).toBe(201);
    }
    const created = racing.filter((answer) => answer.status === 201 && answer.replayed === null);
    expect(created).toHaveLength(1);
    const runId = created[0]?.body.run_id;
    for (const answer of racing.filter((answer) => answer.status === 201))
      expect(answer.body.run_id).toBe(runId);
    // Once answered, each replica gives the same answer again.
    for (const replica of [a, b]) {
      const again = await submit(replica.url, "race-key", "raced");
      expect(again).toMatchObject({ status: 201, replayed: "true", body: { run_id: runId } });
    }
    expect(await runsNamed(a.url, "raced")).toEqual([runId]);
  });

  it("answers a submit sent again to the other replica with the run the first made", async () => {
    const [a, b] = replicas as [TestServer, TestServer];
    const first = await submit(a.url, "failover-key", "failed-over");
    expect(first.status).toBe(201);
    const again = await submit(b.url, "failover-key", "failed-over");
    expect(again).toMatchObject({ status: 201, replayed: "true", body: first.body });
    const other = await fetch(new URL("/api/runs", b.url), {
      method: "POST",
      headers: {
        authorization: `Bearer ${adminToken}`,
        "content-type": "application/json",
        "idempotency-key": "failover-key",
      },
      body: JSON.stringify({ workflow: workflow("another") }),
    });
    expect(other.status).toBe(409);
    expect(((await other.json()) as { error: { code: string } }).error.code).toBe("IDEMPOTENCY_KEY_REUSED");
    expect(await runsNamed(b.url, "failed-over")).toEqual([first.body.run_id]);
  });
});

/** POST `path` with `body` and `key` to `url` as the admin token, with the answer's replay marker. */
async function keyed(url: string, path: string, key: string, body: unknown): Promise<Answer> {
  const response = await fetch(new URL(path, url), {
    method: "POST",
    headers: {
      authorization: `Bearer ${adminToken}`,
      "content-type": "application/json",
      "idempotency-key": key,
    },
    body: JSON.stringify(body),
  });
  return {
    status: response.status,
    replayed: response.headers.get("idempotency-replayed"),
    body: await response.json(),
  };
}

describe.skipIf(!adminUrl)("Idempotency-Key on POST /jobs and /api/chat, across two replicas", () => {
  const replicas: TestServer[] = [];
  // A bot is started only when a runner with Docker is there; this one has no agent.
  let runner: Proc | undefined;

  beforeAll(async () => {
    const env = { RUNYARD_DATABASE_URL: await createTestDatabase(adminUrl), RUNYARD_SECRET_KEY: secretKey };
    replicas.push(await startTestServer(tempDir(), env));
    replicas.push(await startTestServer(tempDir(), env));
    const url = replicas[0]!.url;
    runner = await startRunner(url, await runnerToken(url), { id: "keyed-jobs-runner" });
  });

  afterAll(async () => {
    await runner?.kill();
    await Promise.all(replicas.map((replica) => replica.proc.kill()));
  });

  it("starts one bot for a POST /jobs start sent again to the other replica, and refuses the key with another body", async () => {
    const [a, b] = replicas as [TestServer, TestServer];
    const start = (bot: string) => ({
      blueprint: "bot_runner",
      data: {
        action: "start",
        bot_id: bot,
        // Never pulled: the answer is given before the runner gets to it (wait_secs 0).
        deployment_mode: "image",
        docker_image: "runyard-test-never-pulled.invalid/bot:none",
        wait_secs: 0,
      },
    });
    const first = await keyed(a.url, "/jobs", "jobs-key", start("keyed-bot"));
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    expect(first.body).toMatchObject({ status: "success", data: { name: "keyed-bot" } });
    const again = await keyed(b.url, "/jobs", "jobs-key", start("keyed-bot"));
    expect(again).toMatchObject({ status: 200, replayed: "true", body: first.body });
    const other = await keyed(b.url, "/jobs", "jobs-key", start("another-bot"));
    expect(other.status).toBe(409);
    expect(other.body).toMatchObject({ status: "failure", error: { code: "IDEMPOTENCY_KEY_REUSED" } });
    const { body } = await api<{ bots: Array<{ name: string }> }>(b.url, "GET", "/api/bots");
    expect(body.bots.map((bot) => bot.name)).toEqual(["keyed-bot"]);
    await api(b.url, "DELETE", "/api/bots/keyed-bot");
  });

  it("answers a POST /api/chat sent again to the other replica with the first run's answer, making no second run", async () => {
    const [a, b] = replicas as [TestServer, TestServer];
    const chat = (message: string) => ({ message, model: "gemini-2.5-pro", timeout_secs: 1 });
    const first = await keyed(a.url, "/api/chat", "chat-key", chat("hello"));
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    const again = await keyed(b.url, "/api/chat", "chat-key", chat("hello"));
    expect(again).toMatchObject({ status: 200, replayed: "true", body: first.body });
    const other = await keyed(b.url, "/api/chat", "chat-key", chat("hello again"));
    expect(other.status).toBe(409);
    expect(other.body.error.code).toBe("IDEMPOTENCY_KEY_REUSED");
    const { body } = await api<{ runs: Array<{ run_id: string; kind: string }> }>(
      b.url,
      "GET",
      "/api/runs?limit=500",
    );
    expect(body.runs.filter((run) => run.kind === "agent").map((run) => run.run_id)).toEqual([
      first.body.run_id,
    ]);
  });
});
