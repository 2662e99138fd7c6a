import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, inject, it } from "vitest";
import { runCli, tempDir } from "./helpers/cli.js";
import { createTestDatabase } from "./helpers/postgres.js";
import {
  api,
  freePort,
  isFinal,
  runnerToken,
  startRunner,
  startTestServer,
  submit,
  waitForRun,
} from "./helpers/server.js";

const adminUrl = inject("postgresAdminUrl");

const workflow = `
version: v0.1
name: on-postgres
inventory:
  hosts:
    local: {}
steps:
  - name: hello
    targets: [local]
    action: cmd.run
    args:
      cmd: echo hello from postgres
`;

describe.skipIf(!adminUrl)("a server on PostgreSQL (RUNYARD_DATABASE_URL)", () => {
  it("runs a workflow and keeps it across a restart, with no SQLite file in its home", async () => {
    const env = { RUNYARD_DATABASE_URL: await createTestDatabase(adminUrl) };
    const home = tempDir();
    const server = await startTestServer(home, env);
    const runner = await startRunner(server.url, await runnerToken(server.url), { id: "pg-runner" });
    try {
      const runId = await submit(server.url, workflow);
      const done = await waitForRun(server.url, runId, isFinal);
      expect(done.status).toBe("success");
      expect(existsSync(join(home, "runyard.db"))).toBe(false);
    } finally {
      await runner.kill();
      await server.proc.kill();
    }
    const again = await startTestServer(tempDir(), { ...env, RUNYARD_SECRET_KEY: secretKeyOf(home) });
    try {
      const { body } = await api<{ runs: Array<{ name: string; status: string }> }>(
        again.url,
        "GET",
        "/api/runs",
      );
      expect(body.runs).toEqual([expect.objectContaining({ name: "on-postgres", status: "success" })]);
    } finally {
      await again.proc.kill();
    }
  });

  it("stops start-up naming the host it cannot reach, with a hint and no stack", async () => {
    const port = await freePort();
    const result = await runCli(["server", "--port", "0", "--home", tempDir()], {
      // RUNYARD_DATABASE_WAIT=0: it would wait for the database first (test/database-wait.test.ts).
      env: {
        RUNYARD_DATABASE_URL: `postgres://runyard:s3cret@127.0.0.1:${port}/runyard`,
        RUNYARD_DATABASE_WAIT: "0",
      },
    });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`cannot reach the PostgreSQL database at 127.0.0.1:${port}`);
    expect(result.stderr).toContain("hint: Check that PostgreSQL runs");
    expect(result.stderr).not.toContain("s3cret");
    expect(result.stderr).not.toMatch(/^\s+at /m);
  });
});

function secretKeyOf(home: string): string {
  return readFileSync(join(home, "secret.key"), "utf8").trim();
}
