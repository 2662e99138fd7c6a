import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createToken, startTestServer, type TestServer } from "./helpers/server.js";

/** An Idempotency-Key is the user's own: a teammate's or another tenant's same key tells them nothing. */

let server: TestServer;
let acme = "";
let acmeTeammate = "";
let globex = "";

beforeAll(async () => {
  server = await startTestServer();
  acme = await createToken(server.url, { kind: "user", name: "acme-member", tenant_id: "acme" });
  acmeTeammate = await createToken(server.url, { kind: "user", name: "acme-teammate", tenant_id: "acme" });
  globex = await createToken(server.url, { kind: "user", name: "globex-member", tenant_id: "globex" });
}, 60_000);

afterAll(async () => {
  await server?.proc.kill();
});

describe("Idempotency-Key as another user", () => {
  const yaml = (name: string) =>
    [
      "version: v0.1",
      `name: ${name}`,
      "inventory:",
      "  hosts:",
      "    worker: {}",
      "steps:",
      "  - name: s",
      "    targets: [worker]",
      "    action: shell.run",
      "    args:",
      "      script: echo hi",
      "",
    ].join("\n");
  const submitWith = (bearer: string, key: string, name = "idem") =>
    fetch(`${server.url}/api/runs`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${bearer}`,
        "content-type": "application/json",
        "idempotency-key": key,
      },
      body: JSON.stringify({ kind: "workflow", workflow: yaml(name) }),
    });

  it("a teammate's and another tenant's same key and body create runs of their own, never replaying the first user's answer", async () => {
    const key = "shared-key-h11";
    const first = await submitWith(acme, key);
    expect(first.status).toBe(201);
    const firstRun = ((await first.json()) as { run_id: string }).run_id;
    const again = await submitWith(acme, key);
    expect(again.headers.get("idempotency-replayed")).toBe("true");
    expect(((await again.json()) as { run_id: string }).run_id).toBe(firstRun);
    for (const other of [acmeTeammate, globex]) {
      const answer = await submitWith(other, key);
      expect(answer.status).toBe(201);
      expect(answer.headers.get("idempotency-replayed")).toBeNull();
      const run = ((await answer.json()) as { run_id: string }).run_id;
      expect(run).not.toBe(firstRun);
    }
  });

  it("another user's key sent with another body is not 409: keys tell nothing across users", async () => {
    const key = "probe-key-h11";
    expect((await submitWith(acme, key, "one")).status).toBe(201);
    const probe = await submitWith(globex, key, "two");
    expect(probe.status).toBe(201);
    const teammate = await submitWith(acmeTeammate, key, "three");
    expect(teammate.status).toBe(201);
  });
});
