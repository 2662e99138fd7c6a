import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { runCli, tempDir, writeWorkflow } from "./helpers/cli.js";
import { api, startTestServer, type TestServer } from "./helpers/server.js";

/** A workflow whose `vars:` repeat one big string through `count` aliases. */
function aliasBomb(count: number, stringBytes: number): string {
  const aliases = Array.from({ length: count }, (_, i) => `  V${i}: *big`).join("\n");
  return `name: bomb\nvars:\n  BIG: &big "${"x".repeat(stringBytes)}"\n${aliases}\nsteps:\n  - name: s\n    action: cmd.run\n    args:\n      cmd: echo hi\n`;
}

interface Refusal {
  error: { code: string; message: string; hint: string };
}

let server: TestServer;

beforeAll(async () => {
  server = await startTestServer(tempDir());
});

afterAll(async () => {
  await server.proc.kill();
});

/** How long `/health` takes to answer, from the request to the whole body. */
async function healthMs(): Promise<number> {
  const started = performance.now();
  const response = await fetch(new URL("/health", server.url));
  await response.text();
  return performance.now() - started;
}

describe("YAML alias bombs are refused fast, and the server stays responsive", () => {
  test("a 1 MB body of 600 aliases to POST /api/workflows/validate is a 400 with the line, while /health answers quickly", async () => {
    const bomb = aliasBomb(600, 900_000);
    expect(bomb.length).toBeGreaterThan(900_000);
    // Warm up the route and the parser as a live server is, then send the bomb twice while
    // /health is asked over and over.
    await api(server.url, "POST", "/api/workflows/validate", { workflow: "name: w\nsteps: []\n" });
    const rounds: { healthTimes: number[]; tookMs: number }[] = [];
    for (let round = 0; round < 2; round++) {
      const healthTimes: number[] = [];
      let done = false;
      const started = performance.now();
      const validating = api<Refusal>(server.url, "POST", "/api/workflows/validate", {
        workflow: bomb,
      }).finally(() => {
        done = true;
      });
      while (!done) healthTimes.push(await healthMs());
      const answer = await validating;
      const tookMs = performance.now() - started;
      expect(answer.status, JSON.stringify(answer.body)).toBe(400);
      expect(answer.body.error.code).toBe("WORKFLOW_TOO_LARGE");
      expect(answer.body.error.message).toMatch(
        /workflow\.yaml:104:9: the workflow uses 600 aliases \(\*name\), more than the limit of 100/,
      );
      expect(answer.body.error.hint).toMatch(/max_workflow_bytes/);
      rounds.push({ healthTimes, tookMs });
    }
    // Refused by its count of aliases (the message above), never by expanding them: an expansion
    // of 600 aliases would not end. And a parse that held the event loop would keep a /health
    // asked meanwhile waiting about as long as the whole request; one slow answer in one round is
    // the machine being busy (a full suite on two cores), not the server. Compared with the
    // request's own time, not a clock's figure, so a slow machine is measured against itself.
    for (const { healthTimes } of rounds) expect(healthTimes.length).toBeGreaterThan(0);
    const share = Math.min(...rounds.map(({ healthTimes, tookMs }) => Math.max(...healthTimes) / tookMs));
    expect(
      share,
      rounds
        .map(
          ({ healthTimes, tookMs }) =>
            `/health took ${healthTimes.map(Math.round).join(", ")} ms of ${Math.round(tookMs)}`,
        )
        .join(" | "),
    ).toBeLessThan(0.5);
  });

  test("a 100 KB alias submit to POST /api/runs is refused and stores nothing", async () => {
    const before = await api<{ runs: unknown[] }>(server.url, "GET", "/api/runs");
    const answer = await api<Refusal>(server.url, "POST", "/api/runs", {
      kind: "workflow",
      workflow: aliasBomb(1600, 100_000),
    });
    expect(answer.status).toBe(400);
    expect(answer.body.error.code).toBe("WORKFLOW_TOO_LARGE");
    const listed = await api<{ runs: unknown[] }>(server.url, "GET", "/api/runs");
    expect(listed.body.runs.length).toBe(before.body.runs.length);
    expect(JSON.stringify(listed.body).length).toBeLessThan(10_000);
  });

  test("fewer aliases that still expand past 1 MiB are refused at the alias that passes it", async () => {
    const answer = await api<Refusal>(server.url, "POST", "/api/runs", {
      kind: "workflow",
      workflow: aliasBomb(50, 100_000),
    });
    expect(answer.status).toBe(400);
    expect(answer.body.error.code).toBe("WORKFLOW_TOO_LARGE");
    expect(answer.body.error.message).toMatch(
      /:13:7: with its aliases expanded the workflow passes 1 MiB at alias \*big/,
    );
  });
});

describe("runyard validate and runyard run give the server's error for the same file", () => {
  test("both refuse the alias bomb with the same line, column and message", async () => {
    const file = writeWorkflow(aliasBomb(600, 1000));
    const validate = await runCli(["validate", file]);
    const run = await runCli(["run", file]);
    for (const result of [validate, run]) {
      expect(result.code).not.toBe(0);
      expect(result.stderr).toContain(
        `${file}:104:9: the workflow uses 600 aliases (*name), more than the limit of 100`,
      );
    }
  });

  test("max_workflow_bytes (RUNYARD_MAX_WORKFLOW_BYTES) sets the size limit locally too", async () => {
    const file = writeWorkflow(aliasBomb(20, 1000));
    expect((await runCli(["validate", file])).code).toBe(0);
    const limited = await runCli(["validate", file], { env: { RUNYARD_MAX_WORKFLOW_BYTES: "8192" } });
    expect(limited.code).not.toBe(0);
    expect(limited.stderr).toMatch(/with its aliases expanded the workflow passes 8 KiB at alias \*big/);
  });
});
