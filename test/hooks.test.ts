import { createHmac } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { runCli, tempDir } from "./helpers/cli.js";
import { createTestDatabase } from "./helpers/postgres.js";
import {
  adminToken,
  api,
  apiDeclaredSize,
  isFinal,
  type Proc,
  startRunner,
  startTestServer,
  stepDir,
  type TestServer,
  waitForRun,
} from "./helpers/server.js";

/*
 * Signed webhooks against a real server: the signature is the only credential of a delivery,
 * a delivery sent again (its id, or its body under any id) starts no second run, body values reach steps as environment variables
 * only, and another tenant sees none of it.
 */

let server: TestServer;
let runner: Proc;
let acme: string;
let globex: string;
let out: string;
let secret: string;

/**
 * A saved workflow that writes what it was given, byte for byte, where the test reads it: `dir`
 * is a `stepDir`, its cwd, which the runner's sandbox shows it.
 */
const onPush = (dir: string) => `name: on-push
vars:
  OUT: ${dir}
inputs:
  HOOK_BRANCH: {type: string, max_length: 200}
  HOOK_MESSAGE: {type: string, max_length: 4000}
  HOOK_MISSING:
steps:
  - name: record
    action: shell.run
    args:
      cwd: ${dir}
      script: |
        printf '%s' "$HOOK_BRANCH" > "$OUT/branch-$RUNYARD_RUN_ID"
        printf '%s' "$HOOK_MESSAGE" > "$OUT/message-$RUNYARD_RUN_ID"
        printf '%s' "$HOOK_MISSING" > "$OUT/missing-$RUNYARD_RUN_ID"
`;

const sign = (body: string, key = secret) => `sha256=${createHmac("sha256", key).update(body).digest("hex")}`;

/** The delivery path of each hook the tests made, by name: deliveries go to the hook's id. */
const deliveryPaths = new Map<string, string>();

async function deliver(
  hook: string,
  body: string,
  headers: Record<string, string> = {},
): Promise<{
  status: number;
  body: {
    run_id?: string | null;
    missing_vars?: string[];
    note?: string;
    error?: { code: string; message: string; hint: string };
  };
}> {
  const response = await fetch(new URL(deliveryPaths.get(hook) ?? `/api/hooks/${hook}`, server.url), {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body,
  });
  return { status: response.status, body: (await response.json()) as never };
}

async function runCount(token: string): Promise<number> {
  return (await api<{ runs: unknown[] }>(server.url, "GET", "/api/runs", undefined, token)).body.runs.length;
}

const push = (message: string) =>
  JSON.stringify({ ref: "refs/heads/main", head_commit: { id: "c0ffee", message } });

beforeAll(async () => {
  server = await startTestServer();
  const token = async (body: Record<string, string>) =>
    (await api<{ token: string }>(server.url, "POST", "/api/tokens", body)).body.token;
  acme = await token({ kind: "user", name: "acme member", tenant_id: "acme" });
  globex = await token({ kind: "user", name: "globex member", tenant_id: "globex" });
  runner = await startRunner(
    server.url,
    await token({ kind: "runner", name: "acme runner", tenant_id: "acme" }),
    {
      id: "acme-runner",
    },
  );
  out = stepDir();
  const saved = await api(
    server.url,
    "POST",
    "/api/workflows",
    { name: "on-push", workflow: onPush(out) },
    acme,
  );
  expect(saved.status, JSON.stringify(saved.body)).toBe(201);
  const created = await runCli(
    [
      "hook",
      "create",
      "acme-push",
      "--workflow",
      "on-push",
      "--var",
      "HOOK_BRANCH=$.ref",
      "--var",
      "HOOK_MESSAGE=$.head_commit.message",
      "--var",
      "HOOK_MISSING=$.pull_request.head.ref",
      "--server",
      server.url,
      "--token",
      acme,
    ],
    { cwd: tempDir() },
  );
  expect(created.code, created.stderr).toBe(0);
  expect(created.stdout).toContain("hook acme-push runs saved workflow on-push");
  const url = /^deliver to: (\S+)$/m.exec(created.stdout)?.[1] ?? "";
  // The id, not the name: another tenant may have a hook named acme-push too.
  expect(url).toMatch(new RegExp(`^${server.url}/api/hooks/hook_[0-9a-z]{20}$`));
  deliveryPaths.set("acme-push", new URL(url).pathname);
  secret = /^secret: ([0-9a-f]{64})$/m.exec(created.stdout)?.[1] ?? "";
  expect(secret).not.toBe("");
}, 60_000);

afterAll(async () => {
  await runner?.kill("SIGKILL");
  await server?.proc.kill("SIGKILL");
});

describe("signed webhooks", () => {
  it("starts the saved workflow at once for a well-signed delivery; body values reach steps as text", async () => {
    // Where the step could write it, were the message run as code.
    const pwned = join(out, "pwned");
    const message = `$(touch ${pwned}); rm -rf "$OUT" \`touch ${pwned}\` 'quoted' "double"\nsecond line`;
    const body = push(message);
    const answer = await deliver("acme-push", body, {
      "x-hub-signature-256": sign(body),
      "x-github-delivery": "d-1",
    });
    expect(answer.status, JSON.stringify(answer.body)).toBe(202);
    expect(answer.body.missing_vars).toEqual(["HOOK_MISSING"]);
    const runId = answer.body.run_id ?? "";
    expect((await waitForRun(server.url, runId, isFinal)).status).toBe("success");
    expect(readFileSync(join(out, `branch-${runId}`), "utf8")).toBe("refs/heads/main");
    expect(readFileSync(join(out, `message-${runId}`), "utf8")).toBe(message);
    expect(readFileSync(join(out, `missing-${runId}`), "utf8")).toBe("");
    expect(existsSync(pwned)).toBe(false);
    const { body: run } = await api<{
      trigger: string;
      trigger_ref: string;
      tenant_id: string;
      saved_workflow: string;
    }>(server.url, "GET", `/api/runs/${runId}`, undefined, acme);
    expect(run).toMatchObject({
      trigger: "webhook",
      trigger_ref: "acme-push",
      tenant_id: "acme",
      saved_workflow: "on-push",
    });
  }, 60_000);

  it("starts no second run for a delivery sent again, and answers the first run", async () => {
    const body = push("again");
    const headers = { "x-hub-signature-256": sign(body), "x-github-delivery": "d-again" };
    const first = await deliver("acme-push", body, headers);
    expect(first.status).toBe(202);
    const before = await runCount(acme);
    const replays = await Promise.all([1, 2, 3].map(() => deliver("acme-push", body, headers)));
    for (const replay of replays) {
      expect(replay.status).toBe(200);
      expect(replay.body.run_id).toBe(first.body.run_id);
      expect(replay.body.note).toContain("d-again was received before");
    }
    expect(await runCount(acme)).toBe(before);
  }, 60_000);

  it("starts no second run for the same body under another delivery id or none: only the body is signed", async () => {
    // Whoever saw one delivery (a proxy's log, the repo's delivery history) has its body and its
    // signature, and may send them again with headers of their own.
    const body = push("replayed");
    const first = await deliver("acme-push", body, {
      "x-hub-signature-256": sign(body),
      "x-github-delivery": "d-replay-1",
    });
    expect(first.status, JSON.stringify(first.body)).toBe(202);
    const before = await runCount(acme);
    const replays = await Promise.all([
      deliver("acme-push", body, { "x-hub-signature-256": sign(body), "x-github-delivery": "d-replay-2" }),
      deliver("acme-push", body, { "x-hub-signature-256": sign(body), "x-github-delivery": "d-replay-3" }),
      deliver("acme-push", body, { "x-hub-signature-256": sign(body) }),
    ]);
    for (const replay of replays) {
      expect(replay.status, JSON.stringify(replay.body)).toBe(200);
      expect(replay.body.run_id).toBe(first.body.run_id);
      expect(replay.body.note).toContain("this body was received before");
      expect(replay.body.note).toContain("send a body of its own");
    }
    expect(await runCount(acme)).toBe(before);
    // A replay's id was not kept: the sender may still use it for a body of its own.
    const own = push("a body of its own");
    const next = await deliver("acme-push", own, {
      "x-hub-signature-256": sign(own),
      "x-github-delivery": "d-replay-2",
    });
    expect(next.status, JSON.stringify(next.body)).toBe(202);
    expect(await runCount(acme)).toBe(before + 1);
  }, 60_000);

  it("starts a run per body sent without a delivery id, and one for a body sent twice at once", async () => {
    // A script of one's own tells its deliveries apart inside the body (a timestamp, an id).
    const at = (sentAt: string) => JSON.stringify({ ref: "refs/heads/main", sent_at: sentAt });
    const before = await runCount(acme);
    const a = await deliver("acme-push", at("10:00:00"), { "x-hub-signature-256": sign(at("10:00:00")) });
    const b = await deliver("acme-push", at("10:00:01"), { "x-hub-signature-256": sign(at("10:00:01")) });
    expect([a.status, b.status]).toEqual([202, 202]);
    expect(a.body.run_id).not.toBe(b.body.run_id);
    const twice = await Promise.all(
      [1, 2].map(() => deliver("acme-push", at("10:00:02"), { "x-hub-signature-256": sign(at("10:00:02")) })),
    );
    expect(twice.map((answer) => answer.status).sort()).toEqual([200, 202]);
    expect(twice[0]?.body.run_id).toBe(twice[1]?.body.run_id);
    const again = await deliver("acme-push", at("10:00:00"), { "x-hub-signature-256": sign(at("10:00:00")) });
    expect(again.status).toBe(200);
    expect(again.body.run_id).toBe(a.body.run_id);
    expect(await runCount(acme)).toBe(before + 3);
  }, 60_000);

  it("refuses a missing, wrong or malformed signature with 401 and stores nothing", async () => {
    const body = push("forged");
    const before = await runCount(acme);
    const cases: Array<[Record<string, string>, string]> = [
      [{}, "the delivery has no x-hub-signature-256 header"],
      [{ "x-hub-signature-256": sign(body, "not-the-secret-at-all") }, "does not match its body"],
      [{ "x-hub-signature-256": sign(push("other body")) }, "does not match its body"],
      [{ "x-hub-signature-256": sign(body).slice(0, -2) }, "does not match its body"],
      [{ "x-hub-signature-256": `sha1=${sign(body).slice(7)}` }, "does not match its body"],
      [{ "x-hub-signature-256": "" }, "does not match its body"],
    ];
    for (const [headers, message] of cases) {
      const answer = await deliver("acme-push", body, { ...headers, "x-github-delivery": "d-forged" });
      expect(answer.status, JSON.stringify(headers)).toBe(401);
      expect(answer.body.error?.code).toBe("UNAUTHORIZED");
      expect(answer.body.error?.message).toContain(message);
      expect(answer.body.error?.hint).toContain("X-Hub-Signature-256");
    }
    // A token is no substitute for the signature.
    const withToken = await deliver("acme-push", body, { authorization: `Bearer ${adminToken}` });
    expect(withToken.status).toBe(401);
    expect(await runCount(acme)).toBe(before);
    // Nothing of the refused deliveries was kept: the id is still new when signed.
    const signed = await deliver("acme-push", body, {
      "x-hub-signature-256": sign(body),
      "x-github-delivery": "d-forged",
    });
    expect(signed.status).toBe(202);
  }, 60_000);

  it("answers an unknown hook as a bad signature (401), 400 for a body that is not JSON, 413 past the size cap", async () => {
    // An outsider cannot tell a name with no hook from a hook whose secret they lack.
    const unknown = await deliver("no-such-hook", "{}", { "x-hub-signature-256": sign("{}") });
    const wrongSecret = await deliver("acme-push", "{}", {
      "x-hub-signature-256": sign("{}", "not-the-secret"),
    });
    expect(unknown.status).toBe(401);
    expect(unknown.body).toEqual(wrongSecret.body);
    const notJson = "ref=main";
    const bad = await deliver("acme-push", notJson, { "x-hub-signature-256": sign(notJson) });
    expect(bad.status).toBe(400);
    expect(bad.body.error?.message).toBe("the delivery's body is not JSON");
    // Refused by its declared size, before a byte of it is read.
    const tooLarge = await apiDeclaredSize<{ error: { code: string } }>(
      server.url,
      "POST",
      deliveryPaths.get("acme-push") ?? "",
      3 * 1024 * 1024,
    );
    expect(tooLarge.status).toBe(413);
    expect(tooLarge.body.error.code).toBe("BODY_TOO_LARGE");
  }, 60_000);

  it("answers a ping without starting a run", async () => {
    const before = await runCount(acme);
    const body = JSON.stringify({ zen: "Keep it logically awesome.", hook_id: 1 });
    const answer = await deliver("acme-push", body, {
      "x-hub-signature-256": sign(body),
      "x-github-event": "ping",
    });
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({ run_id: null, note: "pong: the signature matches; a ping starts no run" });
    expect(await runCount(acme)).toBe(before);
  });

  it("keeps another tenant's member from seeing or removing the hook, and lets it use the same name", async () => {
    expect((await api(server.url, "GET", "/api/hooks/acme-push", undefined, globex)).status).toBe(404);
    expect((await api(server.url, "DELETE", "/api/hooks/acme-push", undefined, globex)).status).toBe(404);
    const list = await api<{ hooks: unknown[] }>(server.url, "GET", "/api/hooks", undefined, globex);
    expect(list.body.hooks).toEqual([]);
    const own = await api(
      server.url,
      "POST",
      "/api/workflows",
      { name: "on-push", workflow: onPush(tempDir()) },
      globex,
    );
    expect(own.status).toBe(201);
    // The name is free in globex's tenant: nothing says acme has one of it.
    const same = await api<{ name: string; url: string; secret: string }>(
      server.url,
      "POST",
      "/api/hooks",
      { name: "acme-push", workflow: "on-push" },
      globex,
    );
    expect(same.status, JSON.stringify(same.body)).toBe(201);
    expect(same.body.url).not.toBe(deliveryPaths.get("acme-push"));
    const again = await api<{ error: { code: string; message: string } }>(
      server.url,
      "POST",
      "/api/hooks",
      { name: "acme-push", workflow: "on-push" },
      globex,
    );
    expect(again.status).toBe(409);
    expect(again.body.error.message).toBe("a hook named acme-push exists already");
    // Each tenant sees and removes its own hook of that name; acme's stays, and still delivers.
    const globexView = await api<{ url: string }>(
      server.url,
      "GET",
      "/api/hooks/acme-push",
      undefined,
      globex,
    );
    expect(globexView.body.url).toBe(same.body.url);
    const acmeView = await api<{ url: string }>(server.url, "GET", "/api/hooks/acme-push", undefined, acme);
    expect(acmeView.body.url).toBe(deliveryPaths.get("acme-push"));
    const signedForGlobex = JSON.stringify({ ref: "refs/heads/globex" });
    const toAcme = await deliver("acme-push", signedForGlobex, {
      "x-hub-signature-256": sign(signedForGlobex, same.body.secret),
    });
    expect(toAcme.status).toBe(401);
    expect((await api(server.url, "DELETE", "/api/hooks/acme-push", undefined, globex)).status).toBe(200);
    expect((await api(server.url, "GET", "/api/hooks/acme-push", undefined, globex)).status).toBe(404);
    // Nor may a hook run another tenant's saved workflow: acme's "deploy" is not globex's.
    await api(server.url, "POST", "/api/workflows", { name: "deploy", workflow: onPush(tempDir()) }, acme);
    const foreign = await api(
      server.url,
      "POST",
      "/api/hooks",
      { name: "globex-deploy", workflow: "deploy" },
      globex,
    );
    expect(foreign.status, JSON.stringify(foreign.body)).toBe(404);
    expect((await api(server.url, "GET", "/api/hooks/acme-push", undefined, acme)).status).toBe(200);
  });

  it("refuses bad input at create, storing nothing", async () => {
    const create = (body: Record<string, unknown>) =>
      api<{ error: { message: string } }>(server.url, "POST", "/api/hooks", body, acme);
    expect((await create({ name: "bad name", workflow: "on-push" })).body.error.message).toContain(
      "is not a valid hook name",
    );
    expect(
      (await create({ name: "short", workflow: "on-push", secret: "tooshort" })).body.error.message,
    ).toContain("the secret must be 16 to 256 characters long");
    expect(
      (await create({ name: "path", workflow: "on-push", vars: { HOOK_BRANCH: "ref" } })).body.error.message,
    ).toBe('vars.HOOK_BRANCH: "ref" is not a path into the body: it must start with $');
    // A delivery's body fills declared inputs only, never a name a program reads as a setting.
    for (const name of [
      "MAKEFLAGS",
      "GLIBC_TUNABLES",
      "OPENSSL_CONF",
      "HTTPS_PROXY",
      "LD_PRELOAD",
      "PATH",
      "HOOK_UNDECLARED",
    ]) {
      const refused = await api<{ error: { message: string; hint: string } }>(
        server.url,
        "POST",
        "/api/hooks",
        { name: "steer", workflow: "on-push", vars: { [name]: "$.head_commit.message" } },
        acme,
      );
      expect(refused.status, name).toBe(400);
      expect(refused.body.error.message, name).toContain(`is not an input of saved workflow on-push`);
      expect(refused.body.error.hint, name).toContain("inputs: {HOOK_");
    }
    const { body } = await api<{ hooks: Array<{ name: string }> }>(
      server.url,
      "GET",
      "/api/hooks",
      undefined,
      acme,
    );
    expect(body.hooks.map((hook) => hook.name)).toEqual(["acme-push"]);
  });

  it("takes a secret from stdin, lists hooks, removes one, and audits both", async () => {
    const given = "a-secret-given-on-stdin-0123456789";
    const made = await runCli(
      [
        "hook",
        "create",
        "acme-given",
        "--workflow",
        "on-push",
        "--secret-stdin",
        "--server",
        server.url,
        "--token",
        acme,
      ],
      { cwd: tempDir(), input: `${given}\n` },
    );
    expect(made.code, made.stderr).toBe(0);
    expect(made.stdout).not.toContain("secret:");
    deliveryPaths.set("acme-given", new URL(/^deliver to: (\S+)$/m.exec(made.stdout)?.[1] ?? "").pathname);
    const body = push("given");
    const answer = await deliver("acme-given", body, { "x-hub-signature-256": sign(body, given) });
    expect(answer.status).toBe(202);
    const listed = await runCli(["hook", "list", "--server", server.url, "--token", acme], {
      cwd: tempDir(),
    });
    expect(listed.stdout).toMatch(/acme-given\s+on-push\s+-\s+http/);
    expect(listed.stdout).toContain(
      "HOOK_BRANCH=$.ref HOOK_MESSAGE=$.head_commit.message HOOK_MISSING=$.pull_request.head.ref",
    );
    const removed = await runCli(["hook", "rm", "acme-given", "--server", server.url, "--token", acme], {
      cwd: tempDir(),
    });
    expect(removed.stdout).toBe("hook acme-given removed\n");
    expect((await deliver("acme-given", body, { "x-hub-signature-256": sign(body, given) })).status).toBe(
      401,
    );
    const { body: audit } = await api<{
      events: Array<{ action: string; target: string; tenant_id: string }>;
    }>(server.url, "GET", "/api/audit");
    const hookEntries = audit.events
      .filter((entry) => entry.action.startsWith("hook."))
      .map((entry) => [entry.action, entry.target, entry.tenant_id]);
    expect(hookEntries).toEqual(
      expect.arrayContaining([
        ["hook.create", "acme-push", "acme"],
        ["hook.create", "acme-given", "acme"],
        ["hook.rm", "acme-given", "acme"],
      ]),
    );
  }, 60_000);
});

describe("what a delivery's body can reach: declared inputs only", () => {
  const typed = `name: typed
inputs:
  HOOK_PR: {type: integer}
  HOOK_REF: {type: string, max_length: 10}
  HOOK_DRAFT: {type: boolean, default: "false"}
steps:
  - name: say
    action: cmd.run
    args:
      cmd: echo $HOOK_PR $HOOK_REF $HOOK_DRAFT
`;
  let key = "";

  beforeAll(async () => {
    const saved = await api(server.url, "POST", "/api/workflows", { name: "typed", workflow: typed }, acme);
    expect(saved.status, JSON.stringify(saved.body)).toBe(201);
    const made = await api<{ secret: string; url: string }>(
      server.url,
      "POST",
      "/api/hooks",
      {
        name: "typed-push",
        workflow: "typed",
        vars: { HOOK_PR: "$.number", HOOK_REF: "$.ref", HOOK_DRAFT: "$.draft" },
      },
      acme,
    );
    expect(made.status, JSON.stringify(made.body)).toBe(201);
    key = made.body.secret;
    deliveryPaths.set("typed-push", made.body.url);
  });

  it("refuses at save, at its line and column, an input named as a program's setting", async () => {
    const refused = await api<{ error: { code: string; message: string } }>(
      server.url,
      "POST",
      "/api/workflows",
      {
        name: "steered",
        file: "steered.yaml",
        workflow:
          "name: steered\ninputs:\n  MAKEFLAGS: {type: string}\nsteps:\n  - {name: a, action: cmd.run, args: {cmd: make}}\n",
      },
      acme,
    );
    expect(refused.status).toBe(400);
    expect(refused.body.error.code).toBe("WORKFLOW_INVALID");
    expect(refused.body.error.message).toContain(
      'steered.yaml:3:3: input "MAKEFLAGS" must be named HOOK_ or INPUT_ and capitals, digits or _',
    );
    expect(refused.body.error.message).toContain("call it HOOK_MAKEFLAGS");
  });

  it("refuses a value that does not fit its input's type or length, starting nothing", async () => {
    const before = await runCount(acme);
    const cases: Array<[unknown, string]> = [
      [{ number: "12; rm -rf /", ref: "main" }, "$.number (for input HOOK_PR) is not an integer"],
      [{ number: 7, ref: "x".repeat(11) }, "$.ref (for input HOOK_REF) is longer than its max_length of 10"],
      [{ number: 7, ref: "main", draft: "yes" }, "$.draft (for input HOOK_DRAFT) is not true or false"],
    ];
    for (const [payload, message] of cases) {
      const body = JSON.stringify(payload);
      const answer = await deliver("typed-push", body, { "x-hub-signature-256": sign(body, key) });
      expect(answer.status, body).toBe(400);
      expect(answer.body.error?.message).toBe(message);
    }
    expect(await runCount(acme)).toBe(before);
    const body = JSON.stringify({ number: 7, ref: "main" });
    const answer = await deliver("typed-push", body, { "x-hub-signature-256": sign(body, key) });
    expect(answer.status, JSON.stringify(answer.body)).toBe(202);
    expect(answer.body.missing_vars).toEqual(["HOOK_DRAFT"]);
    const { body: run } = await api<{ inputs: Record<string, string> }>(
      server.url,
      "GET",
      `/api/runs/${answer.body.run_id}`,
      undefined,
      acme,
    );
    expect(run.inputs).toMatchObject({ HOOK_PR: "7", HOOK_REF: "main", HOOK_DRAFT: "false" });
  });

  it("refuses, at inputs:, a save that drops an input a hook fills", async () => {
    const dropped = typed
      .replace("  HOOK_REF: {type: string, max_length: 10}\n", "")
      .replace(" $HOOK_REF", "");
    const refused = await api<{ error: { code: string; message: string } }>(
      server.url,
      "POST",
      "/api/workflows",
      { name: "typed", file: "typed.yaml", workflow: dropped },
      acme,
    );
    expect(refused.status).toBe(400);
    expect(refused.body.error.message).toContain(
      "typed.yaml:2:1: hook typed-push fills HOOK_REF, which inputs: does not declare",
    );
    const shown = await api<{ version: number }>(server.url, "GET", "/api/workflows/typed", undefined, acme);
    expect(shown.body.version).toBe(1);
  });

  it("refuses to promote a version that lacks an input a hook made since picks", async () => {
    const teammate = (
      await api<{ token: string }>(server.url, "POST", "/api/tokens", {
        kind: "user",
        name: "acme teammate",
        tenant_id: "acme",
      })
    ).body.token;
    const two =
      "name: two\ninputs:\n  HOOK_A:\n  HOOK_B:\nsteps:\n  - {name: a, action: cmd.run, args: {cmd: 'true'}}\n";
    expect(
      (await api(server.url, "POST", "/api/workflows", { name: "two", workflow: two }, acme)).status,
    ).toBe(201);
    const hook = (name: string, input: string) =>
      api(server.url, "POST", "/api/hooks", { name, workflow: "two", vars: { [input]: "$.a" } }, acme);
    expect((await hook("two-a", "HOOK_A")).status).toBe(201);
    // The teammate's version drops HOOK_B, which no hook picks yet: saved, pending (two-a is not theirs).
    const dropped = await api<{ promoted: boolean }>(
      server.url,
      "POST",
      "/api/workflows",
      { name: "two", file: "two.yaml", workflow: two.replace("  HOOK_B:\n", "") },
      teammate,
    );
    expect(dropped.body.promoted).toBe(false);
    expect((await hook("two-b", "HOOK_B")).status).toBe(201);
    const refused = await api<{ error: { message: string } }>(
      server.url,
      "POST",
      "/api/workflows/two/promote",
      { version: 2 },
      acme,
    );
    expect(refused.status).toBe(400);
    expect(refused.body.error.message).toContain(
      "two.yaml:2:1: hook two-b fills HOOK_B, which inputs: does not declare",
    );
  });

  it("refuses a delivery to a hook that fills an undeclared name (made before inputs), naming the fix", async () => {
    // A hook stored before inputs were declared: it fills MAKEFLAGS, as hooks could then.
    const db = new Database(join(server.home, "runyard.db"));
    db.prepare("update hooks set vars = ? where name = ?").run(
      JSON.stringify({ MAKEFLAGS: "$.head_commit.message" }),
      "typed-push",
    );
    db.close();
    const before = await runCount(acme);
    const body = JSON.stringify({ head_commit: { message: "--eval=$(shell touch /tmp/pwned)" } });
    const answer = await deliver("typed-push", body, { "x-hub-signature-256": sign(body, key) });
    expect(answer.status).toBe(400);
    expect(answer.body.error?.message).toContain(
      "hook typed-push fills MAKEFLAGS, which saved workflow typed does not declare in its inputs:",
    );
    expect(answer.body.error?.hint).toContain("--var 'HOOK_MAKEFLAGS=$.head_commit.message'");
    expect(await runCount(acme)).toBe(before);
  });
});

const adminUrl = inject("postgresAdminUrl");

describe.skipIf(!adminUrl)("signed webhooks across PostgreSQL replicas", () => {
  it("starts one run for one delivery sent to both replicas at once", async () => {
    const databaseUrl = await createTestDatabase(adminUrl);
    const env = {
      RUNYARD_DATABASE_URL: databaseUrl,
      RUNYARD_SECRET_KEY: "hooks-test-secret-key-0123456789abcdef",
    };
    const a = await startTestServer(tempDir(), env);
    const b = await startTestServer(tempDir(), env);
    try {
      const saved = await api(a.url, "POST", "/api/workflows", {
        name: "on-push",
        workflow: onPush(tempDir()),
      });
      expect(saved.status).toBe(201);
      const key = "a-secret-shared-by-both-replicas";
      const made = await api<{ url: string }>(a.url, "POST", "/api/hooks", {
        name: "fleet-push",
        workflow: "on-push",
        secret: key,
      });
      expect(made.status).toBe(201);
      const body = push("fleet");
      const headers = { "x-hub-signature-256": sign(body, key), "x-github-delivery": "d-fleet" };
      const answers = await Promise.all(
        [a, b, a, b].map((replica) =>
          fetch(new URL(made.body.url, replica.url), {
            method: "POST",
            headers: { "content-type": "application/json", ...headers },
            body,
          }).then(async (response) => ({
            status: response.status,
            body: (await response.json()) as { run_id: string },
          })),
        ),
      );
      expect(answers.map((answer) => answer.status).sort()).toEqual([200, 200, 200, 202]);
      expect(new Set(answers.map((answer) => answer.body.run_id)).size).toBe(1);
      const { body: runs } = await api<{ runs: unknown[] }>(b.url, "GET", "/api/runs");
      expect(runs.runs).toHaveLength(1);
      // Another body, sent to both at once under ids of its own, and with none: one run.
      const other = push("fleet, replayed");
      const replays = await Promise.all(
        ["d-fleet-1", "d-fleet-2", "d-fleet-3", undefined].map((id, i) =>
          fetch(new URL(made.body.url, (i % 2 ? b : a).url), {
            method: "POST",
            headers: {
              "content-type": "application/json",
              "x-hub-signature-256": sign(other, key),
              ...(id ? { "x-github-delivery": id } : {}),
            },
            body: other,
          }).then(async (response) => ({
            status: response.status,
            body: (await response.json()) as { run_id: string },
          })),
        ),
      );
      expect(replays.map((answer) => answer.status).sort()).toEqual([200, 200, 200, 202]);
      expect(new Set(replays.map((answer) => answer.body.run_id)).size).toBe(1);
      const { body: after } = await api<{ runs: unknown[] }>(a.url, "GET", "/api/runs");
      expect(after.runs).toHaveLength(2);
    } finally {
      await Promise.all([a.proc.kill("SIGKILL"), b.proc.kill("SIGKILL")]);
    }
  }, 60_000);
});

describe("hooks named per tenant, as another tenant", () => {
  it("another tenant's hook of the same name is 404 by name, its id refuses an unsigned or wrongly signed delivery, and ?tenant= is refused to a member", async () => {
    const workflow = [
      "version: v0.1",
      "name: hooked",
      "inventory:",
      "  hosts:",
      "    worker: {}",
      "steps:",
      "  - name: s",
      "    targets: [worker]",
      "    action: shell.run",
      "    args:",
      "      script: echo hooked",
      "",
    ].join("\n");
    for (const bearer of [acme, globex]) {
      const saved = await api(server.url, "POST", "/api/workflows", { name: "hooked", workflow }, bearer);
      expect(saved.status, JSON.stringify(saved.body)).toBeLessThan(300);
    }
    const made = await api<{ id: string; url: string; secret: string }>(
      server.url,
      "POST",
      "/api/hooks",
      { name: "same-name", workflow: "hooked" },
      acme,
    );
    expect(made.status, JSON.stringify(made.body)).toBe(201);
    // The same name is free to globex and tells it nothing.
    const theirs = await api<{ id: string }>(
      server.url,
      "POST",
      "/api/hooks",
      { name: "same-name", workflow: "hooked" },
      globex,
    );
    expect(theirs.status).toBe(201);
    expect(theirs.body.id).not.toBe(made.body.id);
    const list = await api<{ hooks: Array<{ id: string }> }>(
      server.url,
      "GET",
      "/api/hooks",
      undefined,
      globex,
    );
    expect(list.body.hooks.map((hook) => hook.id)).toContain(theirs.body.id);
    expect(list.body.hooks.map((hook) => hook.id)).not.toContain(made.body.id);
    expect((await api(server.url, "GET", "/api/hooks/same-name?tenant=acme", undefined, globex)).status).toBe(
      403,
    );
    expect(
      (await api(server.url, "DELETE", "/api/hooks/same-name?tenant=acme", undefined, globex)).status,
    ).toBe(403);
    // Delivering to acme's id with globex's secret, or none.
    const body = JSON.stringify({ ref: "x" });
    const globexSecret = (theirs.body as unknown as { secret: string }).secret;
    for (const signature of [
      undefined,
      `sha256=${createHmac("sha256", globexSecret).update(body).digest("hex")}`,
    ]) {
      const delivered = await fetch(`${server.url}/api/hooks/${made.body.id}`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          ...(signature ? { "x-hub-signature-256": signature } : {}),
        },
        body,
      });
      expect(delivered.status).toBe(401);
    }
    // acme's hook is still acme's.
    const mine = await api<{ id: string }>(server.url, "GET", "/api/hooks/same-name", undefined, acme);
    expect(mine.body.id).toBe(made.body.id);
    // A platform admin names the tenant.
    const admins = await api<{ id: string }>(
      server.url,
      "GET",
      "/api/hooks/same-name?tenant=globex",
      undefined,
      adminToken,
    );
    expect(admins.body.id).toBe(theirs.body.id);
  });
});
