import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import { minVersion, satisfies } from "semver";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cliPath, repoRoot, runCli, tempDir, writeWorkflow } from "./helpers/cli.js";
import {
  adminToken,
  api,
  freePort,
  isFinal,
  type Proc,
  runnerToken,
  startCli,
  startRunner,
  startTestServer,
  submit,
  type TestServer,
  waitForRun,
} from "./helpers/server.js";

/** What a new user meets in the first minutes: set-up, the tour, queued runs, errors, CI. */

const run = promisify(execFile);
const noAuth = { RUNYARD_TOKEN: "", ADOS_TOKEN: "", RUNYARD_SERVER_URL: "", ADOS_API_URL: "" };

/** The lines of the README's first code block after `heading`. */
function readmeBlock(heading: string): string[] {
  const readme = readFileSync(join(repoRoot, "README.md"), "utf8");
  const after = readme.slice(readme.indexOf(heading));
  const block = after.slice(after.indexOf("```bash\n") + 8);
  return block.slice(0, block.indexOf("```")).split("\n");
}

/** Runs a shell line as a user types it, with `path` first on PATH. */
async function shell(
  line: string,
  options: { cwd: string; path?: string; env?: Record<string, string> },
): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = {
    ...process.env,
    NO_COLOR: "1",
    ...(options.path ? { PATH: `${options.path}:${process.env.PATH}` } : {}),
    ...options.env,
  };
  try {
    const { stdout, stderr } = await run("bash", ["-c", line], { cwd: options.cwd, env });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

describe("set-up", () => {
  it("the README's set-up puts `runyard` on PATH, and the tour runs with it from other folders", async () => {
    const setUp = readmeBlock("## Set up")[0]?.split("#")[0] ?? "";
    const linkStep = setUp
      .split("&&")
      .map((part) => part.trim())
      .find((part) => /^npm link\b/.test(part));
    expect(linkStep, `no npm link step in: ${setUp}`).toBeDefined();
    // The link step, as written, into a private prefix instead of the machine's global folder.
    const prefix = tempDir("runyard-prefix-");
    const linked = await shell(linkStep ?? "", { cwd: repoRoot, env: { npm_config_prefix: prefix } });
    expect(linked.code, linked.stderr).toBe(0);
    expect(linked.stderr).not.toMatch(/install-scripts|EBADENGINE/);
    const bin = join(prefix, "bin");

    // Section 1 of the tour, line by line, from the checkout as the README says.
    const tour = readmeBlock("## A five-minute tour");
    const local = tour.slice(
      tour.findIndex((line) => line.startsWith("# 1.")) + 1,
      tour.findIndex((line) => line.startsWith("# 2.")),
    );
    expect(local.filter((line) => line.includes("runyard ")).length).toBeGreaterThanOrEqual(4);
    for (const line of local.filter((l) => l.trim() !== "")) {
      const result = await shell(line, { cwd: repoRoot, path: bin });
      expect(result.code, `${line}\n${result.stdout}${result.stderr}`).toBe(0);
    }

    // From a folder that is not the checkout, with an absolute path.
    const elsewhere = tempDir("runyard-elsewhere-");
    const simple = await shell(`runyard run ${join(repoRoot, "examples", "simple.yaml")}`, {
      cwd: elsewhere,
      path: bin,
    });
    expect(simple.code, simple.stderr).toBe(0);
    expect(simple.stdout).toContain("local | hello");

    // The playbook's own header says how to run it.
    const playbook = readFileSync(join(repoRoot, "examples", "playbooks", "backend-task.yaml"), "utf8");
    const howTo = playbook.match(/^#\s+(cd examples\/playbooks && runyard run .*)$/m)?.[1];
    expect(howTo).toBeDefined();
    const result = await shell(howTo ?? "", { cwd: repoRoot, path: bin });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/run success/);
  }, 120_000);

  it("`runyard up` in any folder suggests a first run that works from that folder", async () => {
    const elsewhere = tempDir("runyard-elsewhere-");
    const port = await freePort();
    const up = startCli(
      ["up", "--port", String(port)],
      { ...noAuth, RUNYARD_ADMIN_TOKEN: adminToken },
      elsewhere,
    );
    try {
      const suggestion = (await up.waitFor(/try: runyard .*\n/)).replace("try: runyard", "").trim();
      const result = await shell(`node ${cliPath} ${suggestion}`, {
        cwd: elsewhere,
        env: { RUNYARD_TOKEN: adminToken },
      });
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toContain("local | hello");
    } finally {
      await up.kill();
    }
  });

  it("every package npm installs accepts the Node.js the README names, so npm warns of no engine", () => {
    const own = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as {
      engines: { node: string };
    };
    const oldest = minVersion(own.engines.node)?.version ?? "";
    expect(oldest).toMatch(/^20\./);
    const lock = JSON.parse(readFileSync(join(repoRoot, "package-lock.json"), "utf8")) as {
      packages: Record<string, { version?: string; optional?: boolean; engines?: { node?: string } }>;
    };
    const refusing = Object.entries(lock.packages)
      .filter(([, pkg]) => pkg.engines?.node && !satisfies(oldest, pkg.engines.node))
      .map(([path, pkg]) => `${path}@${pkg.version} wants node ${pkg.engines?.node}`);
    expect(refusing).toEqual([]);
  });

  it(".ci/run ends with one line of vitest's counts and keeps the test command's exit status", async () => {
    // A stand-in for npm whose `npm test -- ARGS` is the script's last command, `vitest run ARGS`,
    // on a project of two passing tests and one failing one.
    const project = tempDir("runyard-ci-");
    writeFileSync(
      join(project, "counts.test.mjs"),
      'it("one", () => expect(1).toBe(1));\nit("two", () => expect(2).toBe(2));\nit("three", () => expect(3).toBe(4));\n',
    );
    const bin = join(project, "bin");
    mkdirSync(bin);
    const vitest = join(repoRoot, "node_modules", "vitest", "vitest.mjs");
    writeFileSync(
      join(bin, "npm"),
      `#!/usr/bin/env bash\ncase "$1" in\n  test) shift; [ "$1" = "--" ] && shift; cd ${project} && exec node ${vitest} run --globals "$@" ;;\n  *) exit 0 ;;\nesac\n`,
      { mode: 0o755 },
    );
    const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith("VITEST")));
    // Not this run's request to rewrite docs/test-cost.md: the stand-in project has no such page.
    env.RUNYARD_TEST_COST_DOCS = "0";
    const result = await shell(join(repoRoot, ".ci", "run"), {
      cwd: project,
      path: bin,
      env: { ...env, PATH: `${bin}:${process.env.PATH}` } as Record<string, string>,
    });
    expect(result.code, result.stderr).toBe(1);
    expect(result.stdout.trimEnd().split("\n").at(-1)).toBe("2 passed, 1 failed");
  }, 60_000);
});

describe("a server with one runner", () => {
  let server: TestServer;
  let runner: Proc;
  const env = { RUNYARD_TOKEN: adminToken };
  const gpuFlow =
    "name: needs-gpu\ninventory:\n  hosts:\n    trainer: {group: gpu, labels: [cuda]}\nsteps:\n  - name: train\n    targets: [trainer]\n    action: cmd.run\n    args:\n      cmd: echo trained\n";
  const waiting =
    "queued: waiting for a runner outside any tenant in group gpu with labels [cuda]: 1 runner online, 1 outside any tenant, none of them in group gpu with labels [cuda] (start one with --group gpu --labels cuda and a runner token made without --tenant)";

  beforeAll(async () => {
    server = await startTestServer();
    runner = await startRunner(server.url, await runnerToken(server.url), { id: "first-minutes-runner" });
  });
  afterAll(async () => {
    await runner?.kill();
    await server?.proc.kill();
  });

  it("`runyard run --server` says what a queued run waits for", async () => {
    const file = writeWorkflow(gpuFlow);
    const cli = startCli(["run", file, "--server", server.url], env);
    try {
      await cli.waitFor(waiting);
    } finally {
      await cli.kill("SIGINT");
    }
  });

  it("`runyard runs show` says what a queued run waits for", async () => {
    const runId = await submit(server.url, gpuFlow);
    try {
      const result = await runCli(["runs", "show", runId, "--server", server.url], { env });
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toContain(`run ${runId}: needs-gpu (workflow) queued`);
      expect(result.stdout).toContain(waiting);
    } finally {
      await api(server.url, "POST", `/api/runs/${runId}/cancel`);
    }
  });

  it("`runs list --status running` with no match says so, not that there are no runs", async () => {
    await submit(server.url, gpuFlow).then((id) => api(server.url, "POST", `/api/runs/${id}/cancel`));
    const result = await runCli(["runs", "list", "--status", "running", "--server", server.url], { env });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).not.toContain("no runs yet");
    expect(result.stdout).toContain("no running runs; `runyard runs list` shows runs in every state");
  });

  it("piping into head ends quietly: no EPIPE, exit 0", async () => {
    const runId = await submit(
      server.url,
      "name: chatty\ninventory:\n  hosts:\n    any: {}\nsteps:\n  - name: talk\n    targets: [any]\n    action: shell.run\n    args:\n      script: seq 1 50000\n",
    );
    expect((await waitForRun(server.url, runId, isFinal)).status).toBe("success");
    for (const command of [`runs logs ${runId}`, "runs list"]) {
      const result = await shell(
        `set -o pipefail; node ${cliPath} ${command} --server ${server.url} | head -1`,
        { cwd: repoRoot, env },
      );
      expect(result.stderr, command).toBe("");
      expect(result.code, command).toBe(0);
      expect(result.stdout.split("\n").filter(Boolean)).toHaveLength(1);
    }
  });

  it("a missing token gets a CLI hint (--token / RUNYARD_TOKEN), not an HTTP one", async () => {
    const result = await runCli(["runs", "list", "--server", server.url], { env: noAuth });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/hint: .*--token.*RUNYARD_TOKEN/);
    expect(result.stderr).not.toContain("Authorization");
  });
});

describe("CLI errors", () => {
  it("a server URL without a scheme asks: did you mean http://...?", async () => {
    const result = await runCli(["runs", "list", "--server", "127.0.0.1:8088"], { env: noAuth });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/did you mean http:\/\/127\.0\.0\.1:8088\?/i);
  });

  it("no server on the URL asks whether `runyard up` is running there", async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    for (const command of [
      ["runs", "list"],
      ["runs", "logs", "some-run"],
    ]) {
      const result = await runCli([...command, "--server", url], { env: noAuth });
      expect(result.code, command.join(" ")).toBe(1);
      expect(result.stderr).toContain(`cannot reach the server at ${url}: connection refused`);
      expect(result.stderr.toLowerCase()).toContain(`is \`runyard up\` running on ${url}?`);
    }
  }, 20_000);

  it("a busy port says so in one line with a hint, no stack", async () => {
    const holder: Server = createServer();
    await new Promise<void>((resolve) => holder.listen(0, "127.0.0.1", resolve));
    const address = holder.address();
    const port = typeof address === "object" && address ? address.port : 0;
    try {
      for (const command of ["up", "server"]) {
        const result = await runCli([command, "--port", String(port), "--home", tempDir()], { env: noAuth });
        expect(result.code, command).toBe(1);
        expect(result.stderr.trimEnd().split("\n")).toEqual([
          `error: port ${port} on 127.0.0.1 is already in use (another \`runyard up\` or \`runyard server\`?)`,
          "hint: Stop what holds the port, or choose another with --port N (RUNYARD_PORT).",
        ]);
      }
    } finally {
      holder.close();
    }
  });

  it("`token create` from another folder never makes a database there", async () => {
    const elsewhere = tempDir("runyard-elsewhere-");
    const withToken = await runCli(["token", "create", "--runner", "--group", "linux"], {
      cwd: elsewhere,
      env: {
        ...noAuth,
        RUNYARD_TOKEN: adminToken,
        RUNYARD_SERVER_URL: "http://127.0.0.1:1",
        RUNYARD_HOME: "",
      },
    });
    expect(withToken.code).toBe(1);
    expect(withToken.stderr.toLowerCase()).toContain("is `runyard up` running on http://127.0.0.1:1?");
    // With a token and no URL it asks the default server, whatever answers there.
    const defaultUrl = await runCli(["token", "create", "--runner"], {
      cwd: elsewhere,
      env: { ...noAuth, RUNYARD_TOKEN: adminToken, RUNYARD_HOME: "" },
    });
    expect(defaultUrl.code).not.toBe(0);
    const without = await runCli(["token", "create", "--runner"], {
      cwd: elsewhere,
      env: { ...noAuth, RUNYARD_HOME: "" },
    });
    expect(without.code).toBe(2);
    expect(without.stderr).toContain("RUNYARD_TOKEN");
    expect(existsSync(join(elsewhere, ".runyard"))).toBe(false);
  });
});
