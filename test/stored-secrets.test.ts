import { createHash, randomBytes } from "node:crypto";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage } from "node:http";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { type CliResult, runCli, tempDir, writeWorkflow } from "./helpers/cli.js";
import {
  adminToken,
  api,
  isFinal,
  type Proc,
  readEvents,
  startRunner,
  startTestServer,
  type TestServer,
  waitForRun,
} from "./helpers/server.js";

/** A value no output could hold by chance; long enough to be masked. */
function secretValue(label: string): string {
  return `${label}-${randomBytes(9).toString("hex")}`;
}

const sha256 = (text: string): string => createHash("sha256").update(text).digest("hex");

/** Raw bytes of the database file and its WAL, as someone with the disk would read them. */
function databaseBytes(home: string): string {
  return readdirSync(home)
    .filter((name) => name.startsWith("runyard.db"))
    .map((name) => readFileSync(join(home, name)).toString("latin1"))
    .join("");
}

/** The built CLI with `input` piped to its stdin, as `printf %s "$VALUE" | runyard ...` does. */
function runCliWithInput(
  args: string[],
  input: string,
  env: Record<string, string> = {},
): Promise<CliResult> {
  return runCli(args, { env, input });
}

/** A user token of a tenant, made by the admin. */
async function tenantToken(url: string, tenant: string): Promise<string> {
  const { body } = await api<{ token: string }>(url, "POST", "/api/tokens", {
    kind: "user",
    name: `${tenant} member`,
    tenant_id: tenant,
  });
  return body.token;
}

/** A runner serving one tenant's jobs. */
async function tenantRunner(url: string, tenant: string, id: string): Promise<Proc> {
  const { body } = await api<{ token: string }>(url, "POST", "/api/tokens", {
    kind: "runner",
    name: `${tenant} runner`,
    tenant_id: tenant,
  });
  return startRunner(url, body.token, { id, env: { RUNYARD_TENANT_ID: tenant } });
}

/** The step proves it got the real value by printing its hash, and prints the value itself. */
const deployFlow = (extra = "", before = "") => `name: deploy
secrets: [DEPLOY_KEY]
${extra}steps:
${before}  - name: deploy
    action: shell.run
    args:
      script: |
        printf 'hash=%s\\n' "$(printf %s "$DEPLOY_KEY" | sha256sum | cut -d' ' -f1)"
        echo "the key is $DEPLOY_KEY"
        echo "on stderr $DEPLOY_KEY" >&2
`;

function hashPrinted(output: string): string | undefined {
  return /hash=([0-9a-f]{64})/.exec(output)?.[1];
}

describe("stored secrets through the CLI, the server and a runner", () => {
  const procs: Proc[] = [];
  afterEach(async () => {
    await Promise.all(procs.splice(0).map((p) => p.kill()));
  });

  async function server(home = tempDir(), port?: number): Promise<TestServer> {
    // The webhook test's receiver listens on loopback: the operator allows it, as members' notify
    // URLs reach internal addresses only where notify_hosts lists them.
    const config = join(tempDir(), "runyard.yaml");
    writeFileSync(config, 'notify_hosts:\n  - "127.0.0.1"\n');
    const started = await startTestServer(home, {}, port, ["--config", config]);
    procs.push(started.proc);
    return started;
  }

  const cli = (url: string, token: string) => ({
    run: (args: string[]) => runCli([...args, "--server", url, "--token", token]),
    set: (name: string, value: string, extra: string[] = []) =>
      runCliWithInput(["secret", "set", name, ...extra, "--server", url, "--token", token], value),
  });

  it("sets, lists and removes secrets with the CLI: the value from stdin only, never shown, never stored in clear", async () => {
    const { url, home } = await server();
    const admin = cli(url, adminToken);
    const value = secretValue("deploy");

    const refused = await admin.run(["secret", "set", "DEPLOY_KEY", value]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain("read from stdin, never from the command line");

    const set = await admin.set("DEPLOY_KEY", `${value}\n`);
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toBe("secret DEPLOY_KEY stored outside any tenant\n");
    const updated = await admin.set("DEPLOY_KEY", value);
    expect(updated.stdout).toBe("secret DEPLOY_KEY updated outside any tenant\n");
    const multiLine = `-----BEGIN KEY-----\n${secretValue("line")}\n-----END KEY-----\n`;
    expect((await admin.set("SSH_KEY", multiLine)).code).toBe(0);

    const listed = await admin.run(["secret", "list"]);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(/^NAME\s+UPDATED\s+BY\nDEPLOY_KEY\s+\S+Z\s+tok_\S+\nSSH_KEY\s+/);
    const json = await admin.run(["secret", "list", "--json"]);
    expect(JSON.parse(json.stdout).map((s: { name: string }) => s.name)).toEqual(["DEPLOY_KEY", "SSH_KEY"]);

    const stored = databaseBytes(home);
    expect(stored).toContain("DEPLOY_KEY");
    for (const text of [value, multiLine.split("\n")[1] ?? "missing"]) {
      expect(listed.stdout + json.stdout + set.stdout + updated.stdout).not.toContain(text);
      expect(stored).not.toContain(text);
    }

    expect((await admin.run(["secret", "rm", "DEPLOY_KEY"])).stdout).toBe(
      "secret DEPLOY_KEY removed outside any tenant\n",
    );
    const again = await admin.run(["secret", "rm", "DEPLOY_KEY"]);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain("no secret DEPLOY_KEY is stored");
    expect(again.stderr).toContain("runyard secret list");
    expect((await admin.run(["secret", "list", "--json"])).stdout).toBe(
      `${JSON.stringify([JSON.parse(json.stdout)[1]])}\n`,
    );

    const empty = await runCli(["secret", "set", "EMPTY_KEY", "--server", url, "--token", adminToken]);
    expect(empty.code).toBe(2);
    expect(empty.stderr).toContain("no value on stdin");
    expect(empty.stderr).toContain("printf %s");
  });

  it("hands a stored secret to the step as an env var, masked in output, events, record, logs and webhooks", async () => {
    const received: string[] = [];
    const hook = createServer((request: IncomingMessage, response) => {
      let raw = "";
      request.on("data", (chunk) => {
        raw += chunk;
      });
      request.on("end", () => {
        received.push(raw);
        response.writeHead(200).end();
      });
    });
    await new Promise<void>((resolve) => hook.listen(0, "127.0.0.1", resolve));
    const address = hook.address();
    const hookUrl = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}/hook`;
    try {
      const { url, home } = await server();
      const acme = await tenantToken(url, "acme");
      procs.push(await tenantRunner(url, "acme", "acme-1"));
      const value = secretValue("deploy");
      // `echo value |` adds a newline: a one-line value loses it, so the step gets the value itself.
      expect((await cli(url, acme).set("DEPLOY_KEY", `${value}\n`)).code).toBe(0);

      const flow = writeWorkflow(deployFlow(`notify: ${hookUrl}\n`));
      const run = await cli(url, acme).run(["run", flow]);
      expect(run.code, run.stderr).toBe(0);
      expect(hashPrinted(run.stdout + run.stderr)).toBe(sha256(value));
      expect(run.stdout + run.stderr).toContain("the key is ***");
      expect(run.stdout + run.stderr).toContain("on stderr ***");

      const runId = /run (\S+) submitted/.exec(run.stderr)?.[1] ?? "";
      const record = await api<{ vars: Record<string, string>; status: string }>(
        url,
        "GET",
        `/api/runs/${runId}`,
        undefined,
        acme,
      );
      expect(record.body.status).toBe("success");
      expect(record.body.vars).toEqual({ DEPLOY_KEY: "***" });
      const events = await readEvents(url, runId);
      const logs = await cli(url, acme).run(["runs", "logs", runId]);
      expect(logs.stdout).toContain("the key is ***");
      await expect.poll(() => received.some((body) => body.includes('"status":"success"'))).toBe(true);
      const everything = [
        run.stdout,
        run.stderr,
        JSON.stringify(record.body),
        JSON.stringify(events),
        logs.stdout,
        ...received,
        databaseBytes(home),
      ];
      for (const text of everything) expect(text).not.toContain(value);
    } finally {
      await new Promise((resolve) => hook.close(resolve));
    }
  });

  it("keeps tenants apart: B cannot see, remove or use A's secret, and its run fails at submit naming it", async () => {
    const { url } = await server();
    const [a, b] = [cli(url, await tenantToken(url, "acme")), cli(url, await tenantToken(url, "globex"))];
    expect((await a.set("DEPLOY_KEY", secretValue("acme"))).code).toBe(0);

    expect((await b.run(["secret", "list", "--json"])).stdout).toBe("[]\n");
    const removed = await b.run(["secret", "rm", "DEPLOY_KEY"]);
    expect(removed.code).toBe(2);
    expect(removed.stderr).toContain("no secret DEPLOY_KEY is stored for tenant globex");
    const asked = await b.run(["secret", "list", "--tenant", "acme"]);
    expect(asked.code).toBe(2);
    expect(asked.stderr).toContain("only an admin token may name a tenant");

    const flow = writeWorkflow(deployFlow());
    const refused = await b.run(["run", flow]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain("secrets: DEPLOY_KEY is not stored for tenant globex");
    expect(refused.stderr).toContain("hint: Store it with `runyard secret set DEPLOY_KEY`");
    const { body } = await api<{ runs: unknown[] }>(url, "GET", "/api/runs?limit=10");
    expect(body.runs).toEqual([]);

    expect(JSON.parse((await a.run(["secret", "list", "--json"])).stdout)).toHaveLength(1);
  });

  it("reads secrets from the store at each start: rotation and removal reach new runs, a resumed run re-reads them", async () => {
    const home = tempDir();
    const first = await server(home);
    const port = Number(new URL(first.url).port);
    const acmeToken = await tenantToken(first.url, "acme");
    const acme = cli(first.url, acmeToken);
    procs.push(await tenantRunner(first.url, "acme", "acme-2"));
    const [v1, v2, v3] = [secretValue("v1"), secretValue("v2"), secretValue("v3")];
    const flow = writeWorkflow(deployFlow());

    await acme.set("DEPLOY_KEY", v1);
    expect(hashPrinted((await acme.run(["run", flow])).stdout)).toBe(sha256(v1));
    await acme.set("DEPLOY_KEY", v2);
    expect(hashPrinted((await acme.run(["run", flow])).stdout)).toBe(sha256(v2));

    // Two runs wait; one's secret is rotated, the other's removed; then the server restarts. The
    // resumed runs read the store again: the first gets the new value, the second stops and fails.
    const gate = join(tempDir(), "go");
    const waitStep = (file: string) =>
      `  - name: wait\n    command: while [ ! -e ${file} ]; do sleep 0.05; done\n`;
    const submitWaiting = async (workflow: string): Promise<string> => {
      const { body } = await api<{ run_id: string }>(first.url, "POST", "/api/runs", { workflow }, acmeToken);
      await waitForRun(first.url, body.run_id, (run) => run.steps.some((s) => s.name === "wait"));
      return body.run_id;
    };
    await acme.set("DROPPED_KEY", secretValue("dropped"));
    const rotated = await submitWaiting(deployFlow("", waitStep(gate)));
    const dropped = await submitWaiting(
      deployFlow("", waitStep(join(tempDir(), "never"))).replace(
        "secrets: [DEPLOY_KEY]",
        "secrets: [DEPLOY_KEY, DROPPED_KEY]",
      ),
    );
    await acme.set("DEPLOY_KEY", v3);
    expect((await acme.run(["secret", "rm", "DROPPED_KEY"])).code).toBe(0);
    await first.proc.kill("SIGKILL");
    const restarted = await server(home, port);
    writeFileSync(gate, "");
    const done = await waitForRun(restarted.url, rotated, isFinal);
    expect(done.status).toBe("success");
    const output = (await readEvents(restarted.url, rotated))
      .map((e) => (e.type === "step.output" ? e.data : ""))
      .join("");
    expect(hashPrinted(output)).toBe(sha256(v3));
    const failed = await waitForRun(restarted.url, dropped, isFinal);
    expect(failed.status).toBe("failed");
    expect(failed.error).toMatchObject({
      code: "SECRET_MISSING",
      message: "secrets: DROPPED_KEY is not stored for tenant acme, nor given as a variable",
    });
    expect(failed.steps.find((s) => s.name === "wait")?.status).toBe("canceled");

    const again = cli(restarted.url, acmeToken);
    expect((await again.run(["secret", "rm", "DEPLOY_KEY"])).code).toBe(0);
    const refused = await again.run(["run", flow]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain("secrets: DEPLOY_KEY is not stored for tenant acme");
    // Two servers' starts, a kill and eleven CLI commands: 120 s was passed in a full run beside
    // other work; a stuck wait still ends in waitForRun's own bound.
  }, 240_000);
});
