import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adminToken, startInProcessServer } from "../../../test/helpers/in-process.js";
import type { RunningServer } from "../server.js";

// biome-ignore lint/suspicious/noExplicitAny: answers are read field by field, as a client would
type Json = any;

const hello =
  "version: v0.1\nname: hello\nvars:\n  WHO: world\nsteps:\n  - name: hi\n    action: cmd.run\n    args:\n      cmd: echo hi $WHO\n";

let server: RunningServer;

beforeAll(async () => {
  server = await startInProcessServer();
});

afterAll(async () => {
  await server.close();
});

async function validate(workflow: string): Promise<Json> {
  const response = await server.app.inject({
    method: "POST",
    url: "/api/workflows/validate",
    headers: { authorization: `Bearer ${adminToken}` },
    payload: { workflow },
  });
  expect(response.statusCode, response.body).toBe(200);
  return response.json();
}

describe("POST /api/workflows/validate", () => {
  it("accepts a valid workflow and gives its name and vars defaults", async () => {
    expect(await validate(hello)).toEqual({ ok: true, errors: [], name: "hello", vars: { WHO: "world" } });
  });

  it("reports a misspelt key at its line and column, with a hint", async () => {
    const answer = await validate(hello.replace("steps:", "step:"));
    expect(answer.ok).toBe(false);
    const unknown = answer.errors.find((error: Json) => /step/.test(error.message) && error.line === 5);
    expect(unknown, JSON.stringify(answer.errors)).toMatchObject({ line: 5, col: 1 });
    expect(answer.errors.every((error: Json) => error.line >= 1 && error.col >= 1)).toBe(true);
  });

  it("answers an empty text with the problem, and stores no run", async () => {
    const answer = await validate("");
    expect(answer.ok).toBe(false);
    expect(answer.errors[0].message).toMatch(/empty/);
    expect((await server.store.runs.list({})).runs).toEqual([]);
  });
});
