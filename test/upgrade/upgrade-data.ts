import { createHash, createHmac, randomUUID } from "node:crypto";
import { expect } from "vitest";
import { runCli, writeWorkflow } from "../helpers/cli.js";
import { adminToken, api, isFinal, readEvents, waitForRun } from "../helpers/server.js";

/*
 * What an operator's store holds after a while of use, made through a release's own CLI and HTTP
 * API, and how a test reads it back after an upgrade: a tenant member with a password and a
 * personal token, a secret, a saved workflow of two versions with a schedule and a hook, a run
 * whose output is kept, and a runner token.
 */

/** The runner group of the upgrade tests' runner: every step targets it. */
export const runnerGroup = "upgrade";

export const member = { username: "ana", tenant: "acme", password: "correct horse battery staple 7" };
export const secretName = "UPGRADE_TOKEN";
export const secretValue = "s3cret value: ünïcode & spaces\tand a tab";
export const secretSha256 = createHash("sha256").update(secretValue).digest("hex");
export const workflowName = "upgrade-nightly";
export const hookName = "upgrade-push";
export const hookSecret = "hook-secret-0123456789abcdef0123456789";
/** Once a year, at a time no test reaches: the schedule is read, never fired. */
const cron = "0 3 1 1 *";

/**
 * The saved workflow's text at `version`: it prints its version, the hook's input, a line of
 * non-ASCII bytes and one to stderr, and the secret's hash (its value is masked in output).
 */
export function nightly(version: number): string {
  return `version: v0.1
name: ${workflowName}
secrets: [${secretName}]
inputs:
  HOOK_REF: {type: string, max_length: 200, default: none}
schedule:
  - cron: "${cron}"
    timezone: UTC
    overlap: skip
    catch_up: none
inventory:
  hosts:
    box: {group: ${runnerGroup}}
steps:
  - name: report
    targets: [box]
    action: shell.run
    args:
      script: |
        echo "version=${version}"
        echo "ref=$HOOK_REF"
        printf 'bytes=\\303\\244\\342\\202\\254\\tend\\n'
        echo "to stderr" >&2
        printf 'secret=%s\\n' "$(printf '%s' "$${secretName}" | sha256sum | cut -d' ' -f1)"
`;
}

export interface UpgradeData {
  /** The member's personal API token. */
  memberToken: string;
  runnerToken: string;
  hookId: string;
  hookPath: string;
  runId: string;
  /** The run's output as `GET /api/runs/ID/log` answered it, and its events, under the old build. */
  log: string;
  events: unknown[];
  /** What the API answered for each object right after it was made. */
  views: StoredViews;
}

export interface StoredViews {
  workflow: unknown;
  workflowV1: unknown;
  hook: unknown;
  schedules: unknown;
  secrets: unknown;
  user: unknown;
}

/** `runyard ARGS` of the build at `bin` against `url` as the admin; throws unless it exits 0. */
async function cli(bin: string, url: string, args: string[], input?: string): Promise<string> {
  const result = await runCli(args, {
    bin,
    env: { RUNYARD_SERVER_URL: url, RUNYARD_TOKEN: adminToken },
    ...(input === undefined ? {} : { input }),
  });
  if (result.code !== 0) throw new Error(`runyard ${args.join(" ")} exited ${result.code}: ${result.stderr}`);
  return result.stdout;
}

/** Asserts `status` is `expected`, saying what was answered otherwise. */
export function answered<T>(response: { status: number; body: T }, expected: number, what: string): T {
  if (response.status !== expected)
    throw new Error(`${what} answered ${response.status}: ${JSON.stringify(response.body)}`);
  return response.body;
}

/**
 * Makes the data through the build at `bin` (its CLI) and the server at `url` (its HTTP API);
 * `startRunner(token)` joins the runner that runs the saved workflow's run.
 */
export async function makeUpgradeData(
  bin: string,
  url: string,
  startRunner: (token: string) => Promise<unknown>,
): Promise<UpgradeData> {
  await cli(
    bin,
    url,
    ["user", "add", member.username, "--role", "member", "--tenant", member.tenant, "--password-stdin"],
    member.password,
  );
  const memberToken = await personalToken(url);
  await cli(bin, url, ["secret", "set", secretName], secretValue);
  const save = (version: number) =>
    cli(bin, url, ["workflow", "save", writeWorkflow(nightly(version)), "--name", workflowName]);
  await save(1);
  const hookArgs = ["hook", "create", hookName, "--workflow", workflowName, "--secret-stdin"];
  const hook = JSON.parse(
    await cli(bin, url, [...hookArgs, "--var", "HOOK_REF=$.ref", "--json"], hookSecret),
  ) as { id: string; url: string };
  // Saved by the owner of the hook and the schedule: promoted at once, live for both.
  await save(2);
  const runnerToken = (await cli(bin, url, ["token", "create", "--runner", "--group", runnerGroup])).trim();
  await startRunner(runnerToken);
  const { run_id: runId } = answered(
    await api<{ run_id: string }>(url, "POST", `/api/workflows/${workflowName}/runs`, {
      vars: { HOOK_REF: "manual" },
    }),
    201,
    "running the saved workflow",
  );
  const done = await waitForRun(url, runId, isFinal);
  expect(done.status).toBe("success");
  const log = await runLog(url, runId);
  expect(log).toContain(`secret=${secretSha256}`);
  return {
    memberToken,
    runnerToken,
    hookId: hook.id,
    hookPath: new URL(hook.url, url).pathname,
    runId,
    log,
    events: await readEvents(url, runId),
    views: await storedViews(url),
  };
}

/** Logs the member in with the password and makes a personal token in that session. */
async function personalToken(url: string): Promise<string> {
  const session = await logIn(url);
  return answered(
    await api<{ token: string }>(url, "POST", "/api/tokens", { kind: "user", name: "ana's laptop" }, session),
    201,
    "a personal token",
  ).token;
}

/** A session token for the member, by password. */
export async function logIn(url: string): Promise<string> {
  const body = { username: member.username, password: member.password };
  return answered(await api<{ token: string }>(url, "POST", "/api/auth/login", body, ""), 200, "login").token;
}

export async function runLog(url: string, runId: string): Promise<string> {
  const response = await fetch(new URL(`/api/runs/${runId}/log`, url), {
    headers: { authorization: `Bearer ${adminToken}` },
  });
  if (response.status !== 200) throw new Error(`the log of ${runId} answered ${response.status}`);
  return response.text();
}

/** What the API shows of each object the data holds. */
export async function storedViews(url: string): Promise<StoredViews> {
  const read = async (path: string): Promise<unknown> =>
    answered(await api(url, "GET", path), 200, `GET ${path}`);
  const schedules = (await read("/api/schedules")) as { schedules: Array<{ workflow: string }> };
  const secrets = (await read("/api/secrets")) as { secrets: Array<{ name: string }> };
  const users = (await read("/api/users")) as Array<{ username: string }>;
  return {
    workflow: await read(`/api/workflows/${workflowName}`),
    workflowV1: await read(`/api/workflows/${workflowName}?version=1`),
    hook: await read(`/api/hooks/${hookName}`),
    schedules: schedules.schedules.filter((each) => each.workflow === workflowName),
    secrets: secrets.secrets.filter((each) => each.name === secretName),
    user: users.filter((each) => each.username === member.username),
  };
}

/** Sends a signed delivery to the hook at `url`; the run it started. */
export async function deliver(url: string, hookPath: string, ref: string): Promise<string> {
  const body = JSON.stringify({ ref });
  const response = await fetch(new URL(hookPath, url), {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-hub-signature-256": `sha256=${createHmac("sha256", hookSecret).update(body).digest("hex")}`,
      "x-github-delivery": randomUUID(),
    },
    body,
  });
  const answer = (await response.json()) as { run_id?: string };
  if (response.status !== 202 || !answer.run_id)
    throw new Error(`the delivery answered ${response.status}: ${JSON.stringify(answer)}`);
  return answer.run_id;
}

/** Waits for the run to succeed on `url`; its log there. */
export async function succeeded(url: string, runId: string): Promise<string> {
  const done = await waitForRun(url, runId, isFinal);
  if (done.status !== "success")
    throw new Error(`run ${runId} ended ${done.status}: ${JSON.stringify(done)}`);
  return runLog(url, runId);
}

/**
 * Everything the old build made reads back through `url` as it was: the views, the kept run's
 * output byte for byte and its events, the password, the personal token.
 */
export async function expectDataReadsBack(url: string, data: UpgradeData): Promise<void> {
  expect(await storedViews(url)).toEqual(data.views);
  expect(await runLog(url, data.runId)).toBe(data.log);
  expect(await readEvents(url, data.runId)).toEqual(data.events);
  const session = await logIn(url);
  for (const token of [session, data.memberToken]) {
    const whoami = answered(
      await api<Record<string, unknown>>(url, "GET", "/api/auth/whoami", undefined, token),
      200,
      "whoami",
    );
    expect(whoami).toMatchObject({ username: member.username, tenant_id: member.tenant, role: "member" });
    // A member's rights, not an admin's: the users are for admins only.
    expect((await api(url, "GET", "/api/users", undefined, token)).status).toBe(403);
  }
}
