import { afterEach, describe, expect, it } from "vitest";
import { runCli } from "./helpers/cli.js";
import { adminToken, api, type Proc, startTestServer } from "./helpers/server.js";

/*
 * Usernames are one namespace for the whole server (a login names no tenant). A tenant's admin
 * adding a name another tenant holds is refused in the same words as a name of their own tenant:
 * the answer says nothing of the other tenant.
 */

const started: Proc[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((proc) => proc.kill("SIGKILL")));
});

describe("adding a user named like another tenant's user", () => {
  it("is refused in the same words as a name of the admin's own tenant, naming no tenant", async () => {
    const server = await startTestServer();
    started.push(server.proc);
    const platform = { RUNYARD_SERVER_URL: server.url, RUNYARD_TOKEN: adminToken };
    const add = (args: string[], env: Record<string, string>) =>
      runCli(["user", "add", ...args, "--password-stdin"], { env, input: "a-long-password-0123\n" });
    for (const args of [
      ["acme-admin", "--role", "admin", "--tenant", "acme"],
      ["bob", "--role", "member", "--tenant", "globex"],
      ["carol", "--role", "member", "--tenant", "acme"],
    ]) {
      const added = await add(args, platform);
      expect(added.code, added.stderr).toBe(0);
    }
    const login = await api<{ token: string }>(
      server.url,
      "POST",
      "/api/auth/login",
      { username: "acme-admin", password: "a-long-password-0123" },
      "",
    );
    expect(login.status).toBe(200);
    const acmeAdmin = login.body.token;

    const attempt = (username: string) =>
      api<{ error: { code: string; message: string; hint: string } }>(
        server.url,
        "POST",
        "/api/users",
        { username, role: "member" },
        acmeAdmin,
      );
    const otherTenants = await attempt("bob");
    const ownTenants = await attempt("carol");
    expect(otherTenants.status).toBe(409);
    expect(ownTenants.status).toBe(409);
    expect(otherTenants.body.error.code).toBe("USERNAME_TAKEN");
    expect(JSON.stringify(otherTenants.body).replaceAll("bob", "NAME")).toBe(
      JSON.stringify(ownTenants.body).replaceAll("carol", "NAME"),
    );
    expect(JSON.stringify(otherTenants.body)).not.toMatch(/globex|exists|passwd|usr_/);

    // The CLI says the same, and bob in globex is untouched.
    const cli = await add(["bob", "--role", "member", "--tenant", "acme"], {
      RUNYARD_SERVER_URL: server.url,
      RUNYARD_TOKEN: acmeAdmin,
    });
    expect(cli.code).not.toBe(0);
    expect(cli.stderr).toContain("the username bob is taken");
    expect(cli.stderr).not.toContain("globex");
    const users = await api<Array<{ username: string; tenant_id: string }>>(server.url, "GET", "/api/users");
    expect(users.body.filter((user) => user.username === "bob")).toMatchObject([{ tenant_id: "globex" }]);
  });
});
