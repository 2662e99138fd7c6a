import { join } from "node:path";
import Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { startTestServer, submit, waitForRun } from "./helpers/server.js";

/**
 * A queued run whose engine fails before the run starts is ended, saying why, rather than left
 * queued for ever: here its stored spec no longer reads when the server starts again.
 */
describe("a queued run whose engine cannot start", () => {
  it("ends interrupted with the reason after a restart, and the server goes on taking runs", async () => {
    const server = await startTestServer();
    const port = Number(new URL(server.url).port);
    // No runner: the run stays queued.
    const runId = await submit(
      server.url,
      "name: q\nsteps:\n  - {name: a, action: cmd.run, args: {cmd: 'true'}}\n",
    );
    await waitForRun(server.url, runId, (run) => run.status === "queued");
    await server.proc.kill("SIGKILL");
    const db = new Database(join(server.home, "runyard.db"));
    db.prepare("update runs set spec = ? where id = ?").run(JSON.stringify({ workflow: 5 }), runId);
    db.close();
    const again = await startTestServer(server.home, {}, port);
    try {
      const run = await waitForRun(again.url, runId, (r) => r.status !== "queued", 20_000);
      expect(run.status).toBe("interrupted");
      expect(run.error?.message).toContain("the stored workflow run spec is unreadable");
      const next = await submit(
        again.url,
        "name: next\nsteps:\n  - {name: a, action: cmd.run, args: {cmd: 'true'}}\n",
      );
      await waitForRun(again.url, next, (r) => r.status === "queued");
    } finally {
      await again.proc.kill();
    }
  }, 60_000);
});
