import { afterAll, beforeAll, expect, it } from "vitest";
import { runCli, tempDir } from "./helpers/cli.js";
import { adminToken, api, startTestServer, type TestServer } from "./helpers/server.js";

/*
 * Hooks and forges are named within a tenant, as saved workflows are: a member of one tenant
 * uses a name another tenant has as if it were free, and learns nothing of it. (Bots, which need
 * a runner with Docker, are tried in test/bots/bot-attacks.test.ts.)
 */

let server: TestServer;
let acme: string;
let globex: string;

const workflow = 'name: w\nsteps:\n  - name: a\n    action: cmd.run\n    args: {cmd: "true"}\n';

beforeAll(async () => {
  server = await startTestServer(tempDir());
  const token = async (tenant: string) =>
    (
      await api<{ token: string }>(server.url, "POST", "/api/tokens", {
        kind: "user",
        name: tenant,
        tenant_id: tenant,
      })
    ).body.token;
  acme = await token("acme");
  globex = await token("globex");
  for (const member of [acme, globex]) {
    expect((await api(server.url, "POST", "/api/workflows", { name: "w", workflow }, member)).status).toBe(
      201,
    );
  }
}, 60_000);

afterAll(async () => {
  await server?.proc.kill();
});

it("lets two tenants each make a hook of the same name, each seeing and removing only its own", async () => {
  const make = (member: string) =>
    api<{ url: string; tenant_id: string }>(
      server.url,
      "POST",
      "/api/hooks",
      { name: "deploy", workflow: "w" },
      member,
    );
  const mine = await make(acme);
  const theirs = await make(globex);
  expect([mine.status, theirs.status]).toEqual([201, 201]);
  expect(mine.body.url).not.toBe(theirs.body.url);
  expect((await make(globex)).status).toBe(409);
  const seen = await api<{ tenant_id: string }>(server.url, "GET", "/api/hooks/deploy", undefined, globex);
  expect(seen.body.tenant_id).toBe("globex");
  expect((await api(server.url, "DELETE", "/api/hooks/deploy", undefined, globex)).status).toBe(200);
  expect(
    (await api<{ tenant_id: string }>(server.url, "GET", "/api/hooks/deploy", undefined, acme)).body,
  ).toMatchObject({ tenant_id: "acme", url: mine.body.url });
  // A platform admin names the tenant of the hook it means.
  expect((await api(server.url, "GET", "/api/hooks/deploy")).status).toBe(404);
  expect((await api(server.url, "GET", "/api/hooks/deploy?tenant=acme")).status).toBe(200);
});

it("shows a platform admin whose hook of a name is whose, and removes the one of the tenant named", async () => {
  for (const member of [acme, globex]) {
    const made = await api(server.url, "POST", "/api/hooks", { name: "shared", workflow: "w" }, member);
    expect(made.status).toBe(201);
  }
  const cli = (args: string[]) =>
    runCli([...args, "--server", server.url, "--token", adminToken], { cwd: tempDir() });
  const listed = await cli(["hook", "list"]);
  expect(listed.stdout).toMatch(/^shared\s+w\s+-\s+http\S+\s+acme$/m);
  expect(listed.stdout).toMatch(/^shared\s+w\s+-\s+http\S+\s+globex$/m);
  const removed = await cli(["hook", "rm", "shared", "--tenant", "globex"]);
  expect(removed.code, removed.stderr).toBe(0);
  expect((await api(server.url, "GET", "/api/hooks/shared", undefined, globex)).status).toBe(404);
  expect((await api(server.url, "GET", "/api/hooks/shared", undefined, acme)).status).toBe(200);
});

it("lets two tenants each add a forge for the same repo", async () => {
  const add = (member: string) =>
    api<{ id: string; tenant_id: string }>(
      server.url,
      "POST",
      "/api/forges",
      { kind: "github", repo: "acme/app", token: "ghp_names" },
      member,
    );
  const mine = await add(acme);
  const theirs = await add(globex);
  expect([mine.status, theirs.status]).toEqual([201, 201]);
  expect([mine.body.tenant_id, theirs.body.tenant_id]).toEqual(["acme", "globex"]);
  const listed = await api<{ forges: Array<{ id: string }> }>(
    server.url,
    "GET",
    "/api/forges",
    undefined,
    globex,
  );
  expect(listed.body.forges.map((forge) => forge.id)).toEqual([theirs.body.id]);
});
