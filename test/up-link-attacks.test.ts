import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir } from "./helpers/cli.js";
import {
  adminToken,
  api,
  createToken,
  freePort,
  isFinal,
  type Proc,
  readEvents,
  startCli,
  startedOrKilled,
  submit,
  waitForRun,
} from "./helpers/server.js";

/**
 * `runyard up`'s own runner is linked to its server inside the process (src/core/runner-link.ts),
 * not over a loopback WebSocket. What members, tenants and operators can send through it or at it
 * must come out as it did over the socket: every byte of a step's output, in order, once; another
 * runner cannot take the local runner's place; a stop with the link cut ends at once.
 */

/** A step's stored output, joined in order. */
async function storedOutput(url: string, runId: string): Promise<string> {
  const events = await readEvents(url, runId);
  return events.map((event) => (event.type === "step.output" ? event.data : "")).join("");
}

const digest = (text: string): string => createHash("sha256").update(text).digest("hex");

/** `runyard up` on a free port with eight runs at once; resolves once its runner is linked. */
async function startUp(home: string, port: number, env: Record<string, string> = {}): Promise<Proc> {
  const up = startCli(["up", "--port", String(port), "--home", home], {
    RUNYARD_ADMIN_TOKEN: adminToken,
    RUNYARD_CAPACITY: "8",
    RUNYARD_LOG_LEVEL: "info",
    ...env,
  });
  await startedOrKilled(up, "local runner connected");
  return up;
}

describe("`runyard up`'s linked runner, given what a member's step prints", () => {
  let up: Proc;
  let url = "";

  beforeAll(async () => {
    const port = await freePort();
    up = await startUp(tempDir("runyard-up-link-attacks-"), port);
    url = `http://127.0.0.1:${port}`;
  });

  afterAll(async () => {
    await up?.kill();
  });

  it("stores a 10 MB line (past the 4 MiB a runner's message may hold) and 300,000 short lines whole, byte for byte and in order", async () => {
    const oneLine = await submit(
      url,
      "name: one-line\nsteps:\n  - name: line\n    command: head -c 10000000 /dev/zero | tr '\\0' a; printf 'END\\n'\n",
    );
    const manyLines = await submit(
      url,
      "name: many-lines\nsteps:\n  - name: lines\n    command: seq 1 300000\n",
    );
    for (const runId of [oneLine, manyLines]) {
      const run = await waitForRun(url, runId, isFinal, 240_000);
      expect(run.status, JSON.stringify(run.error)).toBe("success");
    }
    const line = await storedOutput(url, oneLine);
    expect(line.length).toBe(10_000_004);
    expect(digest(line)).toBe(digest(`${"a".repeat(10_000_000)}END\n`));
    const lines = await storedOutput(url, manyLines);
    const expected = `${Array.from({ length: 300_000 }, (_, i) => i + 1).join("\n")}\n`;
    expect(lines.length).toBe(expected.length);
    expect(digest(lines)).toBe(digest(expected));
  }, 300_000);

  it("stores invalid UTF-8, NUL bytes and a character split across two writes as the socket's runner did", async () => {
    // \377\376: not UTF-8; \355\240\200: a lone surrogate spelled in UTF-8 (CESU); \360\237 then
    // \230\200 in a second write: one emoji cut in two.
    const runId = await submit(
      url,
      "name: odd-bytes\nsteps:\n  - name: odd\n    command: \"printf 'a\\\\377\\\\376b\\\\000c\\\\355\\\\240\\\\200d\\\\n'; printf '\\\\360\\\\237'; printf '\\\\230\\\\200\\\\n'\"\n",
    );
    const run = await waitForRun(url, runId, isFinal);
    expect(run.status, JSON.stringify(run.error)).toBe("success");
    // What a `runyard server` and `runyard runner` pair stores for the same bytes (checked by hand
    // against the build before the link): each bad byte a U+FFFD, the NUL kept, the emoji whole.
    expect(await storedOutput(url, runId)).toBe("a\uFFFD\uFFFDb\u0000c\uFFFD\uFFFD\uFFFDd\n\u{1F600}\n");
  }, 120_000);

  it("refuses a tenant's runner that takes the local runner's id, and its own runner goes on", async () => {
    const runners = await api<Array<{ id: string; status: string; tenant_id: string | null }>>(
      url,
      "GET",
      "/api/runners",
    );
    const local = runners.body.find((runner) => runner.status === "connected");
    expect(local, JSON.stringify(runners.body)).toBeDefined();
    const localId = local?.id ?? "";
    const tenantToken = await createToken(url, { kind: "runner", name: "acme's runner", tenant_id: "acme" });
    const impostor = startCli(["runner", "--server", url, "--token", tenantToken, "--id", localId], {
      RUNYARD_HOME: tempDir(),
    });
    expect(await impostor.exited).toBe(2);
    expect(impostor.output()).toContain(`runner id "${localId}" belongs to another runner token`);
    // The link was left alone: no replacement, no reconnect, and runs still go through it.
    expect(up.output()).not.toContain("disconnected from server");
    const runId = await submit(url, "name: after\nsteps:\n  - name: echo\n    command: echo still here\n");
    const run = await waitForRun(url, runId, isFinal);
    expect(run.status).toBe("success");
    expect(await storedOutput(url, runId)).toBe("still here\n");
  }, 120_000);
});

describe("`runyard up` stopped with eight runs printing and its runner's token revoked", () => {
  it("exits 143 without waiting out its grace, and after a restart each run holds its output once, in order", async () => {
    const home = tempDir("runyard-up-link-revoked-");
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const up = await startUp(home, port, { RUNYARD_SHUTDOWN_GRACE_MS: "30000" });
    let again: Proc | undefined;
    try {
      const printing =
        'name: printing\nsteps:\n  - name: print\n    command: for i in $(seq 1 3000); do echo "line $i"; sleep 0.01; done\n';
      const runIds: string[] = [];
      for (let i = 0; i < 8; i++) runIds.push(await submit(url, printing));
      for (const runId of runIds) {
        await waitForRun(url, runId, (run) => run.steps.some((step) => step.status === "running"));
      }
      const tokens = await api<Array<{ id: string; name: string }>>(url, "GET", "/api/tokens");
      const local = tokens.body.find((token) => token.name === "local runner (runyard up)");
      const revoked = await api(url, "DELETE", `/api/tokens/${local?.id}`);
      expect(revoked.status).toBe(200);
      await up.waitFor("the server closed the connection: runner token revoked");
      await up.waitFor(/the server refused the runner token/);
      const stopAsked = Date.now();
      expect(await up.kill("SIGTERM")).toBe(143);
      // The revocation ended the runs and their steps: nothing was left for the 30 s grace.
      expect(Date.now() - stopAsked).toBeLessThan(20_000);
      expect(up.output()).not.toMatch(/unhandled|uncaught/i);

      again = await startUp(home, port);
      for (const runId of runIds) {
        const run = await waitForRun(url, runId, isFinal);
        expect(run.status).toBe("interrupted");
        const numbers = (await storedOutput(url, runId))
          .split("\n")
          .filter(Boolean)
          .map((line) => Number(line.replace("line ", "")));
        // Whatever reached the server before the revocation: from the first line on, none twice.
        expect(numbers).toEqual(Array.from({ length: numbers.length }, (_, i) => i + 1));
      }
    } finally {
      await up.kill("SIGKILL");
      await again?.kill();
    }
  }, 300_000);
});
