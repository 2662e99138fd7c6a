import type { LightMyRequestResponse } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adminToken, makeToken, startInProcessServer } from "../../test/helpers/in-process.js";
import { parseOnThisThread } from "./runs/workflow-parser.js";
import type { RunningServer } from "./server.js";

const flow = (name: string): string =>
  `version: v0.1\nname: ${name}\ninventory:\n  hosts:\n    x: {group: nowhere}\nsteps:\n  - name: s\n    targets: [x]\n    action: cmd.run\n    args:\n      cmd: echo hi\n`;

let server: RunningServer;

/** The workflow named `gated` is held in its parse until the test opens the gate. */
let openGate: () => void = () => {};
const gate = new Promise<void>((resolve) => {
  openGate = resolve;
});
let parseBegan: () => void = () => {};
const parseStarted = new Promise<void>((resolve) => {
  parseBegan = resolve;
});

beforeAll(async () => {
  server = await startInProcessServer({
    parseWorkflow: async (text, file, limits) => {
      if (text.includes("name: gated")) {
        parseBegan();
        await gate;
      }
      return parseOnThisThread(text, file, limits);
    },
  });
});

afterAll(async () => {
  await server.close();
});

function post(
  url: string,
  body: unknown,
  options: { key?: string; token?: string; raw?: string } = {},
): Promise<LightMyRequestResponse> {
  return server.app.inject({
    method: "POST",
    url,
    headers: {
      authorization: `Bearer ${options.token ?? adminToken}`,
      ...(body !== undefined || options.raw !== undefined ? { "content-type": "application/json" } : {}),
      ...(options.key !== undefined ? { "idempotency-key": options.key } : {}),
    },
    ...(body !== undefined || options.raw !== undefined
      ? { payload: options.raw ?? JSON.stringify(body) }
      : {}),
  });
}

async function runsNamed(name: string): Promise<number> {
  const { runs } = await server.store.runs.list({ limit: 500 });
  return runs.filter((run) => run.name === name).length;
}

/** A user with two API tokens: one caller, as far as keys go. */
async function userWithTwoTokens(username: string): Promise<[string, string]> {
  const user = await server.store.users.create({ username, role: "member", password_hash: "x" });
  const first = await server.store.tokens.create({ kind: "user", name: "a", user_id: user.id });
  const second = await server.store.tokens.create({ kind: "user", name: "b", user_id: user.id });
  return [first.secret, second.secret];
}

describe("Idempotency-Key on POST /api/runs", () => {
  it("answers the same key and body with the first answer again, marked replayed, creating one run", async () => {
    const body = { kind: "workflow", workflow: flow("replayed"), vars: {} };
    const first = await post("/api/runs", body, { key: "key-replayed" });
    expect(first.statusCode, first.body).toBe(201);
    expect(first.headers["idempotency-replayed"]).toBeUndefined();
    const again = await post("/api/runs", body, { key: "key-replayed" });
    expect(again.statusCode).toBe(201);
    expect(again.headers["idempotency-replayed"]).toBe("true");
    expect(again.json()).toEqual(first.json());
    expect(await runsNamed("replayed")).toBe(1);
  });

  it("compares bodies as parsed JSON: key order and spacing do not matter", async () => {
    const workflow = flow("reordered");
    const first = await post("/api/runs", null, {
      key: "key-reordered",
      raw: JSON.stringify({ kind: "workflow", workflow, vars: { A: "1", B: "2" } }),
    });
    expect(first.statusCode, first.body).toBe(201);
    const again = await post("/api/runs", null, {
      key: "key-reordered",
      raw: `{ "vars": {"B": "2", "A": "1"},\n  "workflow": ${JSON.stringify(workflow)}, "kind": "workflow" }`,
    });
    expect(again.headers["idempotency-replayed"]).toBe("true");
    expect(again.json()).toEqual(first.json());
    expect(await runsNamed("reordered")).toBe(1);
  });

  it("refuses the same key with another body: 409 IDEMPOTENCY_KEY_REUSED, nothing created", async () => {
    const first = await post("/api/runs", { workflow: flow("reused-a") }, { key: "key-reused" });
    expect(first.statusCode).toBe(201);
    const other = await post("/api/runs", { workflow: flow("reused-b") }, { key: "key-reused" });
    expect(other.statusCode).toBe(409);
    expect(other.json().error).toMatchObject({
      code: "IDEMPOTENCY_KEY_REUSED",
      hint: expect.stringContaining("send a new key"),
    });
    expect(await runsNamed("reused-b")).toBe(0);
  });

  it("keeps no answer but 2xx: after a 400 the key may be sent again and then creates the run", async () => {
    const bad = await post("/api/runs", { workflow: "steps: [" }, { key: "key-after-400" });
    expect(bad.statusCode).toBe(400);
    const good = await post("/api/runs", { workflow: flow("after-400") }, { key: "key-after-400" });
    expect(good.statusCode, good.body).toBe(201);
    expect(good.headers["idempotency-replayed"]).toBeUndefined();
    expect(await runsNamed("after-400")).toBe(1);
  });

  it("answers 409 IDEMPOTENCY_KEY_IN_USE with Retry-After while the first request is being answered", async () => {
    const body = { workflow: flow("gated") };
    const first = post("/api/runs", body, { key: "key-in-use" });
    await parseStarted;
    const meanwhile = await post("/api/runs", body, { key: "key-in-use" });
    expect(meanwhile.statusCode).toBe(409);
    expect(meanwhile.headers["retry-after"]).toBe("1");
    expect(meanwhile.json().error).toMatchObject({
      code: "IDEMPOTENCY_KEY_IN_USE",
      hint: expect.stringContaining("Retry-After"),
    });
    openGate();
    expect((await first).statusCode).toBe(201);
    const after = await post("/api/runs", body, { key: "key-in-use" });
    expect(after.headers["idempotency-replayed"]).toBe("true");
    expect(await runsNamed("gated")).toBe(1);
  });

  it("shares keys among a user's tokens, and keeps each user's apart", async () => {
    const [first, second] = await userWithTwoTokens("ida");
    const body = { workflow: flow("per-user") };
    const answered = await post("/api/runs", body, { key: "shared-key", token: first });
    expect(answered.statusCode, answered.body).toBe(201);
    const replayed = await post("/api/runs", body, { key: "shared-key", token: second });
    expect(replayed.headers["idempotency-replayed"]).toBe("true");
    expect(replayed.json()).toEqual(answered.json());
    const other = await post("/api/runs", body, {
      key: "shared-key",
      token: await makeToken(server, "user"),
    });
    expect(other.statusCode).toBe(201);
    expect(other.headers["idempotency-replayed"]).toBeUndefined();
    expect(await runsNamed("per-user")).toBe(2);
  });

  it.each([
    ["an empty key", ""],
    ["a key over 255 characters", "k".repeat(256)],
    ["a key with a character beyond ASCII", "caf\u00e9"],
  ])("refuses %s with 400 IDEMPOTENCY_KEY_INVALID, creating nothing", async (_what, key) => {
    const response = await server.app.inject({
      method: "POST",
      url: "/api/runs",
      headers: {
        authorization: `Bearer ${adminToken}`,
        "content-type": "application/json",
        "idempotency-key": Buffer.from(key, "utf8").toString("latin1"),
      },
      payload: JSON.stringify({ workflow: flow("bad-key") }),
    });
    expect(response.statusCode).toBe(400);
    expect(response.json().error).toMatchObject({
      code: "IDEMPOTENCY_KEY_INVALID",
      hint: expect.stringContaining("1 to 255 printable ASCII characters"),
    });
    expect(await runsNamed("bad-key")).toBe(0);
  });

  it("takes a key of 255 printable characters", async () => {
    const key = `${"x".repeat(250)} ~!@#`;
    const response = await post("/api/runs", { workflow: flow("long-key") }, { key });
    expect(response.statusCode, response.body).toBe(201);
  });
});

describe("Idempotency-Key on the other creating routes", () => {
  it("replays a re-run instead of queuing a second one", async () => {
    const original = await post("/api/runs", { workflow: flow("rerun-source") });
    const { run_id } = original.json();
    const first = await post(`/api/runs/${run_id}/rerun`, undefined, { key: "key-rerun" });
    expect(first.statusCode, first.body).toBe(201);
    const again = await post(`/api/runs/${run_id}/rerun`, undefined, { key: "key-rerun" });
    expect(again.headers["idempotency-replayed"]).toBe("true");
    expect(again.json()).toEqual(first.json());
    expect(await runsNamed("rerun-source")).toBe(2);
  });

  it("replays an approval's answer instead of answering 409 for a step answered already", async () => {
    const gate =
      'name: gate\nsteps:\n  - name: go-live\n    action: approval\n    args:\n      message: "ship?"\n      approvers: [role:admin]\n';
    const { run_id } = (await post("/api/runs", { workflow: gate })).json();
    await expect
      .poll(async () => {
        const run = (
          await server.app.inject({
            method: "GET",
            url: `/api/runs/${run_id}`,
            headers: { authorization: `Bearer ${adminToken}` },
          })
        ).json();
        return run.steps?.[0]?.status;
      })
      .toBe("waiting");
    const url = `/api/runs/${run_id}/steps/go-live/approve`;
    const first = await post(url, { comment: "go" }, { key: "key-approve" });
    expect(first.statusCode, first.body).toBe(200);
    const again = await post(url, { comment: "go" }, { key: "key-approve" });
    expect(again.statusCode).toBe(200);
    expect(again.headers["idempotency-replayed"]).toBe("true");
    expect(again.json()).toEqual(first.json());
    const withoutKey = await post(url, { comment: "go" });
    expect(withoutKey.json().error.code).toBe("CONFLICT");
  });

  it("tells one route's key from another's: the same key on another URL is REUSED", async () => {
    const original = await post("/api/runs", { workflow: flow("other-url") });
    const { run_id } = original.json();
    const first = await post(`/api/runs/${run_id}/rerun`, undefined, { key: "key-url" });
    expect(first.statusCode).toBe(201);
    const elsewhere = await post("/api/runs", { workflow: flow("other-url") }, { key: "key-url" });
    expect(elsewhere.json().error.code).toBe("IDEMPOTENCY_KEY_REUSED");
  });

  it("describes the header and the 409 codes in the OpenAPI document", async () => {
    const document = (await server.app.inject({ method: "GET", url: "/openapi.json" })).json();
    for (const [path, method] of [
      ["/api/runs", "post"],
      ["/api/runs/{id}/rerun", "post"],
      ["/api/runs/{id}/messages", "post"],
      ["/api/runs/{id}/steps/{step}/approve", "post"],
      ["/api/bots", "post"],
      ["/api/workflows/{name}/runs", "post"],
    ] as const) {
      const operation = document.paths[path][method];
      const header = operation.parameters.find(
        (parameter: { in: string; name: string }) =>
          parameter.in === "header" && parameter.name === "idempotency-key",
      );
      expect(header, `${method} ${path}`).toBeDefined();
      expect(header.schema.pattern).toBe("^[\\x20-\\x7e]{1,255}$");
      expect(operation.description).toContain("Idempotency-Key");
      expect(operation.responses["409"].description).toContain("IDEMPOTENCY_KEY_IN_USE");
    }
  });
});
