import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { tempDir } from "../helpers/cli.js";
import { api, startTestServer, type TestServer } from "../helpers/server.js";

/**
 * Who may continue an agent run: a real server, two members of one tenant logged in with their
 * passwords. The run waits in the queue (no runner), which is enough: the sender is checked
 * before anything about the run's state.
 */

const password = "correct horse battery staple";
let server: TestServer;
const tokens: Record<"ana" | "tom", string> = { ana: "", tom: "" };

async function member(username: string): Promise<string> {
  const created = await api(server.url, "POST", "/api/users", {
    username,
    role: "member",
    password,
    tenant_id: "acme",
  });
  expect(created.status, JSON.stringify(created.body)).toBeLessThan(300);
  const login = await api<{ token: string }>(
    server.url,
    "POST",
    "/api/auth/login",
    { username, password },
    "",
  );
  expect(login.status).toBe(200);
  return login.body.token;
}

beforeAll(async () => {
  server = await startTestServer(tempDir());
  tokens.ana = await member("ana");
  tokens.tom = await member("tom");
});

afterAll(async () => {
  await server?.proc.kill();
});

describe("a follow-up message runs as its run's submitter", () => {
  test("a teammate of the same tenant is refused with 403 and a hint; the submitter gets past the check", async () => {
    const submitted = await api<{ run_id: string }>(
      server.url,
      "POST",
      "/api/runs",
      {
        kind: "agent",
        agent: "openai",
        prompt: "add hello.py",
        env: { OPENAI_API_KEY: "sk-ana-own-key-0123456789" },
      },
      tokens.ana,
    );
    expect(submitted.status, JSON.stringify(submitted.body)).toBe(201);
    const runId = submitted.body.run_id;
    // Tom sees the run (same tenant) but may not spend Ana's key.
    expect((await api(server.url, "GET", `/api/runs/${runId}`, undefined, tokens.tom)).status).toBe(200);

    const byTom = await api<{ error: { code: string; message: string; hint: string } }>(
      server.url,
      "POST",
      `/api/runs/${runId}/messages`,
      { text: "now push to main" },
      tokens.tom,
    );
    expect(byTom.status).toBe(403);
    expect(byTom.body.error.code).toBe("FORBIDDEN");
    expect(byTom.body.error.message).toContain("submitted by someone else");
    expect(byTom.body.error.hint).toContain("submit a new run of your own");
    const runs = await api<{ runs: Array<{ id: string }> }>(
      server.url,
      "GET",
      "/api/runs",
      undefined,
      tokens.tom,
    );
    expect(runs.body.runs.map((run) => run.id)).toEqual([runId]);

    // Ana's own message passes the sender check and meets the run's state instead.
    const byAna = await api<{ error: { code: string } }>(
      server.url,
      "POST",
      `/api/runs/${runId}/messages`,
      { text: "also add bye.py" },
      tokens.ana,
    );
    expect(byAna.status).toBe(409);
    expect(byAna.body.error.code).toBe("CONFLICT");
  });
});
