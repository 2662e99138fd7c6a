// biome-ignore-all lint/suspicious/noTemplateCurlyInString: ${VAR} in these strings is workflow syntax, not a template.
import { spawn } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { cliPath, repoRoot, runCli, tempDir, writeWorkflow } from "./helpers/cli.js";
import { adminToken, freePort, type Proc, startCli } from "./helpers/server.js";

/** Runs a shell pipeline as a user's terminal would; resolves with what it printed. */
function pipeline(command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn("bash", ["-c", command], { cwd: repoRoot, env: { ...process.env, NO_COLOR: "1" } });
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      out += chunk;
    });
    child.on("error", reject);
    child.on("close", () => resolve(out));
  });
}

describe("the CLI in a user's shell", () => {
  const procs: Proc[] = [];
  afterEach(async () => {
    await Promise.all(procs.splice(0).map((proc) => proc.kill()));
  });

  it("`runyard run ... | head -2` lets the run finish and exits with the run's code", async () => {
    const marker = join(tempDir(), "finished");
    const file = writeWorkflow(
      `name: piped\nsteps:\n  - name: chatty\n    action: shell.run\n    args:\n      script: |\n        for i in $(seq 1 50); do echo line $i; done\n        sleep 0.3\n        for i in $(seq 1 50); do echo more $i; done\n        touch ${marker}\n  - name: fails\n    action: cmd.run\n    args:\n      cmd: exit 3\n`,
    );
    const out = await pipeline(`node ${cliPath} run ${file} | head -2; echo "exit=\${PIPESTATUS[0]}"`);
    expect(out.split("\n").filter((line) => line.startsWith("exit="))).toEqual(["exit=1"]);
    expect(existsSync(marker)).toBe(true);
  });

  it("a --server that is not runyard gets a clear error, not a parser's stack trace", async () => {
    const other = createServer((_request, response) => {
      response.writeHead(404, { "content-type": "text/html" }).end("<html>not here</html>");
    });
    await new Promise<void>((resolve) => other.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;
    try {
      const result = await runCli(["runs", "list", "--server", url, "--token", "ryt_x"]);
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(`${url} is not a runyard server: it answered HTTP 404 with text/html`);
      expect(result.stderr).toContain("hint:");
      expect(result.stderr).not.toContain("SyntaxError");
    } finally {
      other.close();
    }
  });

  it("`runyard run` submits to the server RUNYARD_SERVER_URL names, as its help says, and token create names that server", async () => {
    const port = await freePort();
    const up = startCli(["up", "--port", String(port), "--home", tempDir()], {
      RUNYARD_ADMIN_TOKEN: adminToken,
    });
    procs.push(up);
    await up.waitFor("local runner connected");
    const server = { url: `http://127.0.0.1:${port}` };
    const file = writeWorkflow(
      "name: env-url\nsteps:\n  - name: s\n    action: cmd.run\n    args:\n      cmd: echo hi\n",
    );
    const result = await runCli(["run", file], {
      env: { RUNYARD_SERVER_URL: server.url, RUNYARD_TOKEN: adminToken },
    });
    expect(result.stderr).toContain(`submitted to ${server.url}`);
    expect(result.stdout).toContain("hi");
    expect(result.code).toBe(0);
    // The runner token's start line names the server it was made on, ready to paste.
    const made = await runCli(["token", "create", "--runner", "--group", "linux"], {
      env: { RUNYARD_SERVER_URL: server.url, RUNYARD_TOKEN: adminToken },
    });
    expect(made.stderr).toContain(
      `runyard runner --server ${server.url} --token ${made.stdout.trim()} --group linux`,
    );
  });

  it("a local run refuses a secret it cannot find, and masks one the environment gives", async () => {
    const file = writeWorkflow(
      'name: sec\nsecrets: [DEPLOY_SECRET]\nsteps:\n  - name: s\n    action: shell.run\n    args:\n      script: echo "value=$DEPLOY_SECRET"\n',
    );
    const refused = await runCli(["run", file], { env: { DEPLOY_SECRET: undefined as unknown as string } });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain("secrets: DEPLOY_SECRET is not set");
    expect(refused.stderr).toContain("hint:");
    const given = await runCli(["run", file], { env: { DEPLOY_SECRET: "s3cr3t-from-env" } });
    expect(given.code).toBe(0);
    expect(given.stdout).toContain("value=***");
    expect(given.stdout).not.toContain("s3cr3t-from-env");
  });
});

describe("runyard up's readiness", () => {
  it("answers /health 200 only once its local runner is connected, and 503 with what it waits for before", async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const up = startCli(["up", "--port", String(port), "--home", tempDir()], {
      RUNYARD_ADMIN_TOKEN: adminToken,
    });
    try {
      const deadline = Date.now() + 30_000;
      const seen: number[] = [];
      for (;;) {
        if (Date.now() > deadline) throw new Error(`no healthy answer in 30 s; saw ${seen.join(",")}`);
        const health = await fetch(new URL("/health", url)).catch(() => undefined);
        if (!health) continue;
        seen.push(health.status);
        const body = (await health.json()) as { ok: boolean; waiting_for?: string };
        if (health.status === 503) {
          expect(body).toMatchObject({ ok: false, waiting_for: "the local runner to connect" });
          continue;
        }
        expect(health.status).toBe(200);
        break;
      }
      const runners = await fetch(new URL("/api/runners", url), {
        headers: { authorization: `Bearer ${adminToken}` },
      }).then((response) => response.json() as Promise<unknown>);
      const list = (Array.isArray(runners) ? runners : (runners as { runners: unknown[] }).runners) as {
        status: string;
      }[];
      expect(list.filter((runner) => runner.status === "connected")).toHaveLength(1);
    } finally {
      await up.kill();
    }
  });

  it("exits non-zero with its local runner's error and hint when that runner cannot start", async () => {
    // Agent turns as Kubernetes Jobs, on a machine with no cluster credentials: the runner
    // refuses to start, so `up` must not stay up answering 503 forever.
    const home = tempDir();
    const config = join(home, "runyard.yaml");
    writeFileSync(config, "execution_mode: kubernetes\nk8s_image: busybox\n");
    const env: Record<string, string> = { ...(process.env as Record<string, string>) };
    delete env.KUBECONFIG;
    delete env.KUBERNETES_SERVICE_HOST;
    const up = startCli(
      ["up", "--port", String(await freePort()), "--home", join(home, "state"), "--config", config],
      { ...env, HOME: home, RUNYARD_ADMIN_TOKEN: adminToken },
    );
    let stderr = "";
    up.child.stderr?.on("data", (chunk: Buffer) => {
      stderr += chunk.toString("utf8");
    });
    // Before the fix it never exited: the test's timeout ends it, and the kill below.
    const code = await up.exited.finally(() => up.kill());
    expect(code).not.toBe(0);
    expect(code).not.toBeNull();
    expect(stderr).toContain("error: the runner cannot use its Kubernetes cluster: no cluster credentials");
    expect(stderr).toContain("hint: Give the runner cluster credentials");
  });
});

describe("runyard validate", () => {
  it("warns about a ${NAME} no source defines, with the close name, and still says valid", async () => {
    const file = writeWorkflow(
      "name: typo\nvars:\n  TOPIC: news\nsteps:\n  - name: post\n    action: shell.run\n    args:\n      script: echo ${TOPIK}\n",
    );
    const result = await runCli(["validate", file]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("valid");
    expect(result.stderr).toContain('warning: step "post" uses ${TOPIK}');
    expect(result.stderr).toContain("did you mean ${TOPIC}?");
  });
});

describe("a bad value in --config", () => {
  it("is named by the file and its key on runner and server; a flag given over it, by the flag", async () => {
    const path = join(tempDir(), "runyard.yaml");
    writeFileSync(path, "capacity: -1\nk8s_pull_timeout: never\n");
    const capacity = `config file ${path}, key capacity: Too small: expected number to be >0`;
    const pullTimeout = `config file ${path}, key k8s_pull_timeout: expected a duration such as 2m or 90s`;
    for (const command of ["runner", "server"]) {
      const result = await runCli([command, "--config", path]);
      expect(result.stderr, command).toBe(`error: invalid configuration:\n  ${capacity}\n  ${pullTimeout}\n`);
      expect(result.code, command).toBe(2);
    }
    const flag = await runCli(["runner", "--config", path, "--capacity", "0"]);
    expect(flag.stderr).toBe(
      `error: invalid configuration:\n  --capacity: Too small: expected number to be >0\n  ${pullTimeout}\n`,
    );
    expect(flag.code).toBe(2);
  });
});
