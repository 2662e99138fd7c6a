import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { RunyardError } from "../src/core/errors.js";
import { uploadArtifact } from "../src/runner/artifact-upload.js";
import type { RunningServer } from "../src/server/server.js";
import { tempDir } from "./helpers/cli.js";
import { injectJson, makeToken, startInProcessServer } from "./helpers/in-process.js";
import { createTestDatabase } from "./helpers/postgres.js";
import { freePort, type Proc, startRunner } from "./helpers/server.js";

/*
 * docs/artifacts.md: a real server (in this process, its SQLite file in a home folder) and a real
 * `runyard runner` process holding a job whose step waits for a gate file; the test uploads as
 * that runner would, with its token and the job id, and reads back as users of two tenants.
 */

const maxArtifactBytes = 64 * 1024;
const maxRunArtifactBytes = 160 * 1024;

let server: RunningServer;
let home: string;
let runner: Proc;
const tokens = { acme: "", globex: "", runner: "", otherRunner: "" };
const gates: string[] = [];

/**
 * Where the gates are: the runners list it in step_cwd_roots, as an operator lists a folder their
 * steps may work in, so a sandboxed step that names its gate's folder as cwd sees the gate open.
 */
const gateRoot = tempDir("runyard-artifact-gates-");

/** A job like an agent task's: it runs until the test opens its gate, a file `GATE` in its cwd. */
const gatedWorkflow = (gate: string) => `
version: v0.1
name: agent-like
inventory:
  hosts:
    worker: {}
steps:
  - name: work
    targets: [worker]
    action: shell.run
    args:
      cwd: ${dirname(gate)}
      script: |
        while [ ! -f "$GATE" ]; do sleep 0.05; done
`;

/** A gate of its own folder under gateRoot: the path of a file that is not there yet. */
const newGate = (): string => join(mkdtempSync(join(gateRoot, "gate-")), "open");

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Submits a gated run as tenant acme and waits until the runner holds its job. */
async function leasedJob(): Promise<{ runId: string; jobId: string; gate: string }> {
  const gate = newGate();
  gates.push(gate);
  const submitted = await injectJson(server.app, "POST", "/api/runs", {
    token: tokens.acme,
    body: { workflow: gatedWorkflow(gate), vars: { GATE: gate } },
  });
  expect(submitted.status, JSON.stringify(submitted.body)).toBe(201);
  const runId: string = submitted.body.run_id;
  const job = await until("the runner to accept the job", async () =>
    (await server.store.jobs.list({ runId })).find((j) => j.status === "running" && j.runner_id !== null),
  );
  return { runId, jobId: job.id, gate };
}

interface ErrorAnswer {
  status: number;
  body: { error: { code: string; message: string; hint: string } };
}

async function put(
  jobId: string,
  name: string,
  body: string | Buffer,
  token: string,
  type = "text/plain",
): Promise<ErrorAnswer> {
  const response = await fetch(
    new URL(`/api/jobs/${encodeURIComponent(jobId)}/artifacts/${encodeURIComponent(name)}`, server.url),
    { method: "PUT", headers: { authorization: `Bearer ${token}`, "content-type": type }, body },
  );
  return { status: response.status, body: (await response.json()) as ErrorAnswer["body"] };
}

const upload = (jobId: string, name: string, content: string, contentType = "text/plain") =>
  uploadArtifact({ serverUrls: [server.url], token: tokens.runner, jobId, name, contentType, content });

const list = (runId: string, token: string) =>
  injectJson(server.app, "GET", `/api/runs/${runId}/artifacts`, { token });

let live: { runId: string; jobId: string };

beforeAll(async () => {
  home = tempDir();
  server = await startInProcessServer({
    home,
    artifactLimits: { maxArtifactBytes, maxRunArtifactBytes },
    stepCwdRoots: [gateRoot],
  });
  tokens.acme = await makeToken(server, "user", { tenant_id: "acme" });
  tokens.globex = await makeToken(server, "user", { tenant_id: "globex" });
  tokens.runner = await makeToken(server, "runner", { tenant_id: "acme" });
  tokens.otherRunner = await makeToken(server, "runner", { tenant_id: "acme" });
  runner = await startRunner(server.url, tokens.runner, {
    id: "artifact-runner",
    capacity: 4,
    env: { RUNYARD_STEP_CWD_ROOTS: gateRoot },
  });
  live = await leasedJob();
});

afterAll(async () => {
  for (const gate of gates) writeFileSync(gate, "");
  await runner?.kill("SIGKILL");
  await server?.close();
});

describe("artifacts (docs/artifacts.md)", () => {
  it("a runner uploads for its leased job; the artifact is listed and downloads byte-identical", async () => {
    const content = "diff --git a/ü.txt b/ü.txt\n--- a/ü.txt\n+++ b/ü.txt\n@@ -1 +1 @@\n-old\n+naïve 😀\n";
    const bytes = Buffer.from(content, "utf8");
    const sha256 = createHash("sha256").update(bytes).digest("hex");
    const stored = await upload(live.jobId, "diff.patch", content, "text/x-diff");
    expect(stored).toEqual({
      path: `/api/runs/${live.runId}/artifacts/diff.patch`,
      size: bytes.length,
      sha256,
    });

    const listed = await list(live.runId, tokens.acme);
    expect(listed.status).toBe(200);
    expect(listed.body.artifacts).toContainEqual({
      name: "diff.patch",
      size: bytes.length,
      content_type: "text/x-diff",
      sha256,
      created_at: expect.any(String),
      url: stored.path,
    });

    const response = await fetch(new URL(stored.path, server.url), {
      headers: { authorization: `Bearer ${tokens.acme}` },
    });
    expect(response.status).toBe(200);
    expect(Buffer.from(await response.arrayBuffer()).equals(bytes)).toBe(true);
    expect(response.headers.get("content-type")).toBe("text/x-diff; charset=utf-8");
    expect(response.headers.get("content-length")).toBe(String(bytes.length));
    expect(response.headers.get("content-disposition")).toBe('attachment; filename="diff.patch"');
    expect(response.headers.get("x-content-type-options")).toBe("nosniff");
  });

  it("replaces an artifact uploaded again under the same name (a turn rewrites its transcript)", async () => {
    await upload(live.jobId, "transcript.jsonl", '{"turn":1}\n', "application/x-ndjson");
    const second = await upload(
      live.jobId,
      "transcript.jsonl",
      '{"turn":1}\n{"turn":2}\n',
      "application/x-ndjson; charset=utf-8",
    );
    const entries = (await list(live.runId, tokens.acme)).body.artifacts.filter(
      (artifact: { name: string }) => artifact.name === "transcript.jsonl",
    );
    expect(entries).toEqual([
      expect.objectContaining({
        size: second.size,
        sha256: second.sha256,
        content_type: "application/x-ndjson",
      }),
    ]);
  });

  it("refuses another runner's token (403) and a user's token (403), before reading the body; nothing is stored", async () => {
    const other = await put(live.jobId, "stolen.txt", "not mine", tokens.otherRunner);
    expect(other.status).toBe(403);
    expect(other.body.error.code).toBe("FORBIDDEN");
    expect(other.body.error.message).toContain(live.jobId);
    // Refused before its body is read: a large one gets the same answer, not 413.
    const large = await put(live.jobId, "stolen.txt", "z".repeat(8 * 1024 * 1024), tokens.otherRunner);
    expect(large.status).toBe(403);
    const user = await put(live.jobId, "stolen.txt", "not mine", tokens.acme);
    expect(user.status).toBe(403);
    expect(user.body.error.hint).toContain("GET /api/runs/:id/artifacts");
    const names = (await list(live.runId, tokens.acme)).body.artifacts.map((a: { name: string }) => a.name);
    expect(names).not.toContain("stolen.txt");
  });

  it("answers 404 for an unknown job", async () => {
    const answer = await put("job_does_not_exist", "a.txt", "x", tokens.runner);
    expect(answer.status).toBe(404);
    expect(answer.body.error.code).toBe("NOT_FOUND");
  });

  it("refuses a bad name with a hint (400), and a runner's client says why without retrying", async () => {
    for (const name of [".hidden", "a b.txt", "x:y.txt"]) {
      const answer = await put(live.jobId, name, "x", tokens.runner);
      expect(answer.status, name).toBe(400);
      expect(answer.body.error.code).toBe("INVALID_INPUT");
      expect(answer.body.error.hint).toContain("letters, digits");
    }
    // Past 100 characters the router refuses the path itself, before any route.
    const long = await put(live.jobId, "x".repeat(101), "x", tokens.runner);
    expect(long.status).toBe(414);
    await expect(upload(live.jobId, "../escape", "x")).rejects.toMatchObject({
      code: "INVALID_INPUT",
      message: expect.stringContaining("not a valid artifact name"),
    });
  });

  it("refuses content that is not UTF-8 text (400), and an unknown media type", async () => {
    const binary = await put(
      live.jobId,
      "blob.bin",
      Buffer.from([0x89, 0x50, 0xff, 0xfe]),
      tokens.runner,
      "application/octet-stream",
    );
    expect(binary.status).toBe(400);
    expect(binary.body.error.message).toContain("not valid UTF-8");
    const json = await put(live.jobId, "result.json", "{}", tokens.runner, "application/json");
    expect(json.status).toBe(415);
    const names = (await list(live.runId, tokens.acme)).body.artifacts.map((a: { name: string }) => a.name);
    expect(names).not.toContain("blob.bin");
    expect(names).not.toContain("result.json");
  });

  it("refuses an artifact over the cap, and a run's artifacts over the run's cap (413); nothing is stored", async () => {
    const { runId, jobId } = await leasedJob();
    // Refused by its declared size, before the body is read.
    const tooBig = await put(jobId, "huge.log", "x".repeat(8 * 1024 * 1024), tokens.runner);
    expect(tooBig.status).toBe(413);
    expect(tooBig.body.error.code).toBe("BODY_TOO_LARGE");
    expect(tooBig.body.error.hint).toContain("RUNYARD_MAX_ARTIFACT_BYTES");
    await expect(upload(jobId, "huge.log", "x".repeat(maxArtifactBytes + 1))).rejects.toMatchObject({
      code: "BODY_TOO_LARGE",
    });

    await upload(jobId, "one.log", "x".repeat(maxArtifactBytes));
    const part = "y".repeat(60 * 1024);
    await upload(jobId, "two.log", part);
    // Replacing frees the replaced bytes: still within the run's 160 KiB.
    await upload(jobId, "two.log", part);
    const third = upload(jobId, "three.log", part);
    await expect(third).rejects.toBeInstanceOf(RunyardError);
    await expect(third).rejects.toMatchObject({ code: "BODY_TOO_LARGE" });
    await expect(third).rejects.toHaveProperty(
      "hint",
      expect.stringContaining("RUNYARD_MAX_RUN_ARTIFACT_BYTES"),
    );
    const names = (await list(runId, tokens.acme)).body.artifacts.map((a: { name: string }) => a.name);
    expect(names).toEqual(["one.log", "two.log"]);
  });

  it("refuses an upload for a finished job (409)", async () => {
    const { runId, jobId, gate } = await leasedJob();
    await upload(jobId, "before.txt", "stored while the job ran");
    writeFileSync(gate, "");
    await until("the job to finish", async () =>
      (await server.store.jobs.get(jobId))?.status === "done" ? true : undefined,
    );
    const late = await put(jobId, "after.txt", "too late", tokens.runner);
    expect(late.status).toBe(409);
    expect(late.body.error.code).toBe("CONFLICT");
    const names = (await list(runId, tokens.acme)).body.artifacts.map((a: { name: string }) => a.name);
    expect(names).toEqual(["before.txt"]);
  });

  it("tenant B can neither list nor read tenant A's artifacts (404); runner tokens cannot read", async () => {
    await upload(live.jobId, "secret-plan.txt", "acme only");
    for (const url of [
      `/api/runs/${live.runId}/artifacts`,
      `/api/runs/${live.runId}/artifacts/secret-plan.txt`,
    ]) {
      const answer = await injectJson(server.app, "GET", url, { token: tokens.globex });
      expect(answer.status, url).toBe(404);
      expect(answer.body.error.code).toBe("NOT_FOUND");
      expect((await injectJson(server.app, "GET", url, { token: tokens.runner })).status).toBe(403);
    }
    const missing = await injectJson(server.app, "GET", `/api/runs/${live.runId}/artifacts/nothing.txt`, {
      token: tokens.acme,
    });
    expect(missing.status).toBe(404);
    expect(missing.body.error.hint).toContain(`/api/runs/${live.runId}/artifacts`);
  });

  it("keeps the content sealed: a marker in it is not in the SQLite file's bytes", async () => {
    const marker = "artifact-marker-in-clear-0451";
    await upload(live.jobId, "agent.log", `step 1\n${marker}\nstep 2\n`);
    const files = readdirSync(home).filter((name) => name.startsWith("runyard.db"));
    expect(files).toContain("runyard.db");
    const bytes = Buffer.concat(files.map((name) => readFileSync(join(home, name))));
    expect(bytes.includes("agent.log")).toBe(true);
    expect(bytes.includes(marker)).toBe(false);
    const read = await injectJson(server.app, "GET", `/api/runs/${live.runId}/artifacts/agent.log`, {
      token: tokens.acme,
    });
    expect(read.body).toBe(`step 1\n${marker}\nstep 2\n`);
  });
});

describe("artifacts across server replicas (PostgreSQL)", () => {
  const adminUrl = inject("postgresAdminUrl");

  it.skipIf(adminUrl === "")(
    "an artifact uploaded through one replica is listed and read through another",
    async () => {
      const databaseUrl = await createTestDatabase(adminUrl);
      const secretKey = "artifacts-replicas-secret-key-0123456789";
      const first = await startInProcessServer({ databaseUrl, secretKey, stepCwdRoots: [gateRoot] });
      const second = await startInProcessServer({ databaseUrl, secretKey, stepCwdRoots: [gateRoot] });
      let replicaRunner: Proc | undefined;
      const gate = newGate();
      try {
        const user = await makeToken(first, "user", { tenant_id: "acme" });
        const runnerToken = await makeToken(first, "runner", { tenant_id: "acme" });
        // The runner is connected to the first replica only.
        replicaRunner = await startRunner(first.url, runnerToken, {
          id: "replica-runner",
          capacity: 1,
          env: { RUNYARD_STEP_CWD_ROOTS: gateRoot },
        });
        const submitted = await injectJson(first.app, "POST", "/api/runs", {
          token: user,
          body: { workflow: gatedWorkflow(gate), vars: { GATE: gate } },
        });
        const runId: string = submitted.body.run_id;
        const job = await until("the runner to accept the job", async () =>
          (await first.store.jobs.list({ runId })).find((j) => j.status === "running"),
        );
        // It uploads to the second one, as a runner whose first server is unreachable would.
        const stored = await uploadArtifact({
          serverUrls: [second.url],
          token: runnerToken,
          jobId: job.id,
          name: "diff.patch",
          contentType: "text/x-diff",
          content: "+shared through the database\n",
        });
        for (const replica of [first, second]) {
          const listed = await injectJson(replica.app, "GET", `/api/runs/${runId}/artifacts`, {
            token: user,
          });
          expect(listed.body.artifacts.map((a: { name: string }) => a.name)).toEqual(["diff.patch"]);
          const read = await injectJson(replica.app, "GET", stored.path, { token: user });
          expect(read.body).toBe("+shared through the database\n");
        }
      } finally {
        writeFileSync(gate, "");
        await replicaRunner?.kill("SIGKILL");
        await second.close();
        await first.close();
      }
    },
  );
});

describe("uploadArtifact, the runner's client", () => {
  it("fails over from a server that cannot be reached to the next one, ws:// URLs too", async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const stored = await uploadArtifact({
      serverUrls: [dead, server.url],
      token: tokens.runner,
      jobId: live.jobId,
      name: "failover.txt",
      contentType: "text/plain",
      content: "reached the live one",
    });
    expect(stored.path).toBe(`/api/runs/${live.runId}/artifacts/failover.txt`);
    const viaWs = await uploadArtifact({
      serverUrls: [dead.replace("http", "ws"), server.url.replace("http", "ws")],
      token: tokens.runner,
      jobId: live.jobId,
      name: "failover.txt",
      contentType: "text/plain",
      content: "reached the live one over ws:// URLs",
    });
    expect(viaWs.size).toBe("reached the live one over ws:// URLs".length);
  });

  it("retries a server error with backoff, and gives up after three retries with the server's error", async () => {
    const answers: number[] = [];
    let failing = 2;
    const flaky: Server = createServer((request, response) => {
      request.resume();
      request.on("end", () => {
        const status = answers.length < failing ? 503 : 201;
        answers.push(status);
        response.writeHead(status, { "content-type": "application/json" });
        response.end(
          JSON.stringify(
            status === 201
              ? { name: "a.txt", size: 1, sha256: "00", path: "/api/runs/r/artifacts/a.txt" }
              : { error: { code: "INTERNAL", message: "database busy", hint: "try later" } },
          ),
        );
      });
    });
    await new Promise<void>((resolve) => flaky.listen(0, "127.0.0.1", resolve));
    const address = flaky.address();
    const url = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
    const send = () =>
      uploadArtifact({
        serverUrls: [url],
        token: "t",
        jobId: "j",
        name: "a.txt",
        contentType: "text/plain",
        content: "a",
      });
    try {
      const started = Date.now();
      expect((await send()).path).toBe("/api/runs/r/artifacts/a.txt");
      expect(answers).toEqual([503, 503, 201]);
      // Two waits, the second twice the first (250 ms, then 500 ms).
      expect(Date.now() - started).toBeGreaterThanOrEqual(750);

      answers.length = 0;
      failing = Number.POSITIVE_INFINITY;
      await expect(send()).rejects.toMatchObject({
        code: "INTERNAL",
        message: expect.stringContaining("database busy"),
      });
      expect(answers).toEqual([503, 503, 503, 503]);
    } finally {
      await new Promise((resolve) => flaky.close(resolve));
    }
  });
});
