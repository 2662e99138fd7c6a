import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { openSqliteStore } from "../src/store/sqlite.js";
import { tempDir } from "./helpers/cli.js";
import { adminToken, api, freePort, type Proc, startCli, startTestServer } from "./helpers/server.js";

/*
 * The audit log under a flood of refused logins, through a real `runyard server` over HTTP: the
 * refusals of one client are counted in a couple of rows, `/metrics` counts them, and entries
 * older than `audit.retention_days` are pruned.
 */

interface Entry {
  id: string;
  at: string;
  action: string;
  outcome: string;
  target: string | null;
  address: string | null;
  details: Record<string, unknown>;
}

const started: Proc[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((proc) => proc.kill("SIGKILL")));
});

async function auditEntries(url: string, query = ""): Promise<Entry[]> {
  const { status, body } = await api<{ events: Entry[] }>(url, "GET", `/api/audit?limit=500${query}`);
  expect(status).toBe(200);
  return body.events;
}

describe("refused logins in the audit log", () => {
  it("1,000 refused logins from one client make a couple of rows that count 1,000, and /metrics counts them", async () => {
    const server = await startTestServer();
    started.push(server.proc);
    const login = (i: number) =>
      fetch(new URL("/api/auth/login", server.url), {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ username: `guess-${i % 3}`, password: `wrong-${i}` }),
      }).then((response) => response.status);
    const statuses: number[] = [];
    for (let batch = 0; batch < 20; batch += 1) {
      statuses.push(...(await Promise.all(Array.from({ length: 50 }, (_, i) => login(batch * 50 + i)))));
    }
    // 5 wrong guesses per username (3 names) pass the limiter; the rest are rate-limited.
    const wrong = statuses.filter((status) => status === 401).length;
    expect(wrong).toBe(15);
    expect(statuses.filter((status) => status === 429)).toHaveLength(1000 - wrong);

    const refused = (await auditEntries(server.url, "&action=login")).filter((e) => e.outcome === "denied");
    // One row per reason (and per minute: a flood that straddles a minute makes one more of each).
    expect(refused.length).toBeGreaterThanOrEqual(2);
    expect(refused.length).toBeLessThanOrEqual(4);
    expect(refused.reduce((sum, e) => sum + Number(e.details.count), 0)).toBe(1000);
    const byReason = (reason: string) =>
      refused.filter((e) => e.details.reason === reason).reduce((sum, e) => sum + Number(e.details.count), 0);
    expect(byReason("wrong_credentials")).toBe(15);
    expect(byReason("rate_limited")).toBe(985);
    expect(refused.every((e) => e.address === "127.0.0.1")).toBe(true);
    expect(new Set(refused.flatMap((e) => e.details.usernames as string[]))).toEqual(
      new Set(["guess-0", "guess-1", "guess-2"]),
    );
    expect(JSON.stringify(refused)).not.toMatch(/wrong-\d+/);

    const metrics = await fetch(new URL("/metrics", server.url), {
      headers: { authorization: `Bearer ${adminToken}` },
    }).then((response) => response.text());
    expect(metrics).toMatch(/^runyard_login_refused_total\{reason="wrong_credentials"[^}]*\} 15$/m);
    expect(metrics).toMatch(/^runyard_login_refused_total\{reason="rate_limited"[^}]*\} 985$/m);
  });

  it("entries older than audit.retention_days are pruned by the server, newer ones kept", async () => {
    const home = tempDir();
    const store = await openSqliteStore(join(home, "runyard.db"));
    const day = 86_400_000;
    const old = {
      actor: { kind: "admin", user_id: null, token_id: null, username: null },
      tenant_id: null,
      address: "10.0.0.1",
      action: "token.create" as const,
      outcome: "ok" as const,
      details: {},
    };
    try {
      await store.audit.append({
        ...old,
        target: "tok_old",
        at: new Date(Date.now() - 40 * day).toISOString(),
      });
      await store.audit.append({
        ...old,
        target: "tok_recent",
        at: new Date(Date.now() - 20 * day).toISOString(),
      });
    } finally {
      await store.close();
    }
    const config = join(tempDir(), "runyard.yaml");
    writeFileSync(config, "audit:\n  retention_days: 30\n");
    const port = await freePort();
    const proc = startCli(["server", "--port", String(port), "--home", home, "--config", config], {
      RUNYARD_ADMIN_TOKEN: adminToken,
      RUNYARD_LOG_LEVEL: "info",
    });
    started.push(proc);
    await proc.waitFor(/listening on http:\/\/[^\s]+/);
    await proc.waitFor("audit entries pruned");
    const url = `http://127.0.0.1:${port}`;
    const targets = (await auditEntries(url)).map((e) => e.target);
    expect(targets).toContain("tok_recent");
    expect(targets).not.toContain("tok_old");
  });

  it("refuses an audit.retention_days that is not a positive whole number, saying which key", async () => {
    const config = join(tempDir(), "runyard.yaml");
    writeFileSync(config, "audit:\n  retention_days: 0\n");
    const proc = startCli(["server", "--port", String(await freePort()), "--config", config], {
      RUNYARD_ADMIN_TOKEN: adminToken,
    });
    started.push(proc);
    const code = await proc.exited;
    expect(code).not.toBe(0);
    expect(proc.output()).toContain("audit.retention_days");
  });
});
