import { afterAll, beforeAll, expect, test } from "vitest";
import { tempDir } from "./helpers/cli.js";
import { api, startTestServer, type TestServer } from "./helpers/server.js";

let server: TestServer;

beforeAll(async () => {
  server = await startTestServer(tempDir());
});

afterAll(async () => {
  await server.proc.kill();
});

/** A valid workflow of about 1 MB: `steps` steps, each echoing 400 characters. */
function bigWorkflow(steps: number): string {
  const body = Array.from(
    { length: steps },
    (_, i) => `  - name: s${i}\n    command: echo ${"x".repeat(400)}\n`,
  ).join("");
  return `name: big\nsteps:\n${body}`;
}

const small = "name: small\nsteps:\n  - name: s\n    command: /bin/echo hi\n";

test("a small workflow submitted while a 1 MB workflow is being parsed is answered without waiting for that parse", async () => {
  const big = bigWorkflow(2200);
  expect(big.length).toBeGreaterThan(900_000);
  // Warm up both routes as a live server is.
  expect((await api(server.url, "POST", "/api/workflows/validate", { workflow: small })).status).toBe(200);
  expect((await api(server.url, "POST", "/api/runs", { kind: "workflow", workflow: small })).status).toBe(
    201,
  );
  let done = false;
  const started = performance.now();
  const validating = api<{ valid?: boolean }>(server.url, "POST", "/api/workflows/validate", {
    workflow: big,
  }).finally(() => {
    done = true;
  });
  const submitTimes: number[] = [];
  while (!done) {
    const submitted = performance.now();
    const answer = await api<{ run_id: string }>(server.url, "POST", "/api/runs", {
      kind: "workflow",
      workflow: small,
    });
    expect(answer.status, JSON.stringify(answer.body)).toBe(201);
    submitTimes.push(performance.now() - submitted);
  }
  const validated = await validating;
  const parseMs = performance.now() - started;
  expect(validated.status, JSON.stringify(validated.body)).toBe(200);
  expect(
    Math.max(...submitTimes),
    `submits took ${submitTimes.map(Math.round).join(", ")} ms while the big workflow took ${Math.round(parseMs)} ms`,
  ).toBeLessThan(Math.max(150, parseMs / 3));
  expect(submitTimes.length).toBeGreaterThan(1);
});
