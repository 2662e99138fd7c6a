import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { DockerEngine } from "../src/exec/docker/docker-engine.js";
import { finished, parseEvents, repoRoot, runCli, tempDir } from "./helpers/cli.js";
import { busyboxImage, requireDocker } from "./helpers/docker.js";
import { hasTools } from "./helpers/shared-agent-runner.js";
import { startModelServer } from "./model-server/server.js";

const haveDocker = await requireDocker();

/**
 * The server and runner the examples that need one share, started by the first that asks and
 * stopped after the file: each example saves workflows of its own names.
 */
let fleet: Promise<{ url: string; stop: () => Promise<void> }> | undefined;
function sharedServer(): Promise<{ url: string; stop: () => Promise<void> }> {
  fleet ??= (async () => {
    const { runnerToken, startRunner, startTestServer } = await import("./helpers/server.js");
    const server = await startTestServer();
    const runner = await startRunner(server.url, await runnerToken(server.url), {
      id: "examples",
      capacity: 4,
    });
    return {
      url: server.url,
      stop: async () => {
        await Promise.all([runner.kill("SIGKILL"), server.proc.kill("SIGKILL")]);
      },
    };
  })();
  return fleet;
}
afterAll(async () => {
  await (await fleet)?.stop();
});

/** Every example in examples/ runs as its header comment says. */
describe("examples", () => {
  it("simple.yaml prints hello", async () => {
    const result = await runCli(["run", "examples/simple.yaml"]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("local | hello");
  });

  it("exports-when-retry.yaml passes variables, skips, retries and tolerates a failure", async () => {
    const result = await runCli(["run", "examples/exports-when-retry.yaml", "--var", "COUNT=3", "--json"]);
    expect(result.code).toBe(0);
    const end = finished(parseEvents(result.stdout));
    expect(end.vars).toMatchObject({ OK: "true", COUNT: "3", NOTES: "line one\nline two" });
    const status = Object.fromEntries((end.steps ?? []).map((s) => [s.name, [s.status, s.attempts]]));
    expect(status).toEqual({
      produce: ["success", 1],
      use: ["success", 1],
      flaky: ["success", 2],
      never: ["skipped", 0],
      "allowed-to-fail": ["failed", 1],
    });
  });

  it("retry-policy.yaml retries exit code 75 with capped back-off and passes on the third attempt", async () => {
    const result = await runCli(["run", "examples/retry-policy.yaml", "--json"]);
    expect(result.code, result.stderr).toBe(0);
    const events = parseEvents(result.stdout);
    expect(
      events.flatMap((e) =>
        e.type === "step.retrying" ? [[e.attempt, e.reason, e.exit_code, e.delay_ms]] : [],
      ),
    ).toEqual([
      [1, "error", 75, 200],
      [2, "error", 75, 300],
    ]);
    expect(finished(events).steps?.[0]).toMatchObject({ name: "fetch", status: "success", attempts: 3 });
  });

  it("approval-form.yaml is a valid workflow whose form a validate run accepts", async () => {
    const result = await runCli(["validate", "examples/approval-form.yaml"]);
    expect(result.code, result.stderr + result.stdout).toBe(0);
  });

  it("agent-triage.yaml's agent answers in its schema, and the step its severity picks runs", async () => {
    const model = await startModelServer({
      conversations: [
        { match: hasTools, turns: [{ text: '{"severity": "high", "summary": "db-2 is out of disk"}' }] },
      ],
    });
    try {
      const home = tempDir("runyard-example-agent-");
      const result = await runCli(
        ["run", "examples/agent-triage.yaml", "--json", "--var", "REPORT=disk full on db-2"],
        {
          env: {
            RUNYARD_HOME: home,
            OPENAI_BASE_URL: `${model.url}/v1`,
            OPENAI_API_KEY: "sk-test-example-triage",
          },
        },
      );
      expect(result.code, result.stderr).toBe(0);
      const events = parseEvents(result.stdout);
      const status = Object.fromEntries((finished(events).steps ?? []).map((s) => [s.name, s.status]));
      expect(status).toEqual({ triage: "success", page: "success", ticket: "skipped" });
      expect(result.stdout).toContain("paging on-call -- db-2 is out of disk");
      expect(JSON.stringify(model.requests.find(hasTools)?.body)).toContain("disk full on db-2");
    } finally {
      await model.stop();
    }
  }, 120_000);

  it("nightly-report.yaml runs once here, saying its schedules apply to saved workflows", async () => {
    const result = await runCli(["run", "examples/nightly-report.yaml"]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toContain("schedule: applies to saved workflows only");
    expect(result.stdout).toContain("report: disk usage");
  });

  it("output-limits.yaml caps the log and still exports", async () => {
    const result = await runCli(["run", "examples/output-limits.yaml", "--json"]);
    expect(result.code).toBe(0);
    expect(finished(parseEvents(result.stdout)).vars?.LINES).toBe("2000");
  });

  it("graph.yaml runs lint beside build, test after build with its export, package last", async () => {
    const result = await runCli(["run", "examples/graph.yaml", "--json"]);
    expect(result.code, result.stderr).toBe(0);
    const events = parseEvents(result.stdout);
    const order = events.flatMap((e) =>
      e.type === "step.started" ? [`+${e.step}`] : e.type === "step.finished" ? [`-${e.step}`] : [],
    );
    expect(order.slice(0, 2)).toEqual(["+lint", "+build"]);
    expect(order.indexOf("+test")).toBeGreaterThan(order.indexOf("-build"));
    expect(order.at(-2)).toBe("+package");
    const printed = events.flatMap((e) => (e.type === "step.output" ? [e.data] : [])).join("");
    expect(printed).toContain("packaging app-1.0.tar.gz\n");
  });

  it("matrix.yaml runs each combination under its name, then report", async () => {
    const result = await runCli(["run", "examples/matrix.yaml"]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain("test (NODE=20, OS=mac) [local] | node 20 on mac\n");
    expect(result.stdout).toContain(
      "test (NODE=22, OS=linux, EXPERIMENTAL=yes) [local] | node 22 on linux (experimental)\n",
    );
    expect(result.stdout).not.toContain("NODE=18, OS=mac");
    expect(result.stdout).toMatch(/✔ report \[local\] success/);
  });

  it("rollback.yaml undoes deploy, then migrate, and still fails; --no-rollback undoes nothing", async () => {
    const result = await runCli(["run", "examples/rollback.yaml", "--json"]);
    expect(result.code).toBe(1);
    const end = finished(parseEvents(result.stdout));
    expect(end.rolled_back).toBe(true);
    expect(end.steps?.map((s) => `${s.name}:${s.status}`)).toEqual([
      "migrate:success",
      "deploy:success",
      "smoke-test:failed",
      "rollback: deploy:success",
      "rollback: migrate:success",
    ]);
    expect(result.stdout).toContain("restoring schema 6");
    const kept = await runCli(["run", "examples/rollback.yaml", "--no-rollback"]);
    expect(kept.code).toBe(1);
    expect(kept.stdout).not.toContain("rollback:");
  });

  it("the playbook-format example runs unchanged from its folder", async () => {
    const result = await runCli(["run", "backend-task.yaml", "--var", "lint_enabled=true", "--json"], {
      cwd: join(repoRoot, "examples", "playbooks"),
    });
    expect(result.code, result.stderr).toBe(0);
    const steps = finished(parseEvents(result.stdout)).steps ?? [];
    expect(steps.map((s) => s.status)).toEqual(["success", "success", "success"]);
  });
});

describe.skipIf(!haveDocker)("docker executor example", () => {
  it("docker-executor.yaml runs its steps in a read-only, network-less container and exports from it", async () => {
    // The example names its image; the test's busybox gets that name for the run, and loses it after.
    const engine = new DockerEngine();
    const exampleImage = "runyard-example-busybox:1";
    await engine.docker.getImage(await busyboxImage()).tag({ repo: "runyard-example-busybox", tag: "1" });
    try {
      const result = await runCli(["run", "examples/docker-executor.yaml", "--json"]);
      expect(result.code, result.stderr + result.stdout).toBe(0);
      const events = parseEvents(result.stdout);
      const output = events.flatMap((e) => (e.type === "step.output" ? [e.data] : [])).join("");
      expect(output).toContain("root file system read-only: yes\n");
      expect(output).toContain("network interfaces: lo \n");
      expect(output).toContain(`exported from the container: ARCH=${finished(events).vars?.ARCH}\n`);
      expect(finished(events).vars?.ARCH).toMatch(/\S/);
    } finally {
      await engine.docker.getImage(exampleImage).remove({ noprune: true });
    }
  });
});

/** Starts the three agent-servers of examples/multi-agent.yaml around `fn`. */
async function withAgents(fn: () => Promise<void>): Promise<void> {
  const { startCli } = await import("./helpers/server.js");
  const agents = [7072, 7073, 7074].map((port) =>
    startCli(["agent-server", "--addr", `:${port}`, "--token", "runner-token"]),
  );
  try {
    await Promise.all(agents.map((agent) => agent.waitFor("listening on")));
    await fn();
  } finally {
    await Promise.all(agents.map((agent) => agent.kill()));
  }
}

describe("multi-agent example", () => {
  it("dispatches to three agent-servers, polling the long task", () =>
    withAgents(async () => {
      const result = await runCli(["run", "examples/multi-agent.yaml", "--token", "runner-token", "--json"]);
      expect(result.code, result.stderr).toBe(0);
      const events = parseEvents(result.stdout);
      const hellos = events.flatMap((e) =>
        e.type === "step.output" && e.step === "hello" ? [e.data.trim()] : [],
      );
      expect(hellos.sort()).toEqual(["hello from agent1", "hello from agent2", "hello from agent3"]);
      const ticks = events.flatMap((e) =>
        e.type === "step.output" && e.step === "long-task" ? [e.data] : [],
      );
      expect(ticks.join("")).toBe("tick 1\ntick 2\ntick 3\ntick 4\ntick 5\nBOPS_EXPORT:LONG_DONE=yes\n");
      expect(finished(events).vars?.LONG_DONE).toBe("yes");
    }));

  it("a wrong token is refused with a hint about matching tokens", () =>
    withAgents(async () => {
      const result = await runCli(["run", "examples/multi-agent.yaml", "--token", "wrong", "--json"]);
      expect(result.code).toBe(1);
      const error = finished(parseEvents(result.stdout)).error;
      expect(error?.code).toBe("UNAUTHORIZED");
      expect(error?.hint).toMatch(/token/);
    }));
});

describe("concurrency group example", () => {
  it("concurrency-group.yaml: of two runs of one target on a server, the second waits for the first", async () => {
    const { adminToken } = await import("./helpers/server.js");
    const server = await sharedServer();
    const submit = () =>
      runCli(["run", "examples/concurrency-group.yaml", "--server", server.url, "--var", "TARGET=prod"], {
        env: { RUNYARD_TOKEN: adminToken },
      });
    const results = await Promise.all([submit(), submit()]);
    for (const result of results) expect(result.code, result.stderr).toBe(0);
    const waited = results.filter((result) =>
      `${result.stdout}${result.stderr}`.includes("waiting for concurrency group deploy-prod"),
    );
    expect(waited).toHaveLength(1);
  }, 60_000);
});

describe("webhook example", () => {
  it("handlers.yaml runs its success handlers, or after a failure its rollback and failure handlers, then exit's", async () => {
    const ok = await runCli(["run", "examples/handlers.yaml"]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain("shipped app-1.4.tar.gz");
    expect(ok.stdout).toContain("cleaning up after a success run");
    const broken = await runCli(["run", "examples/handlers.yaml", "--var", "BREAK=1", "--json"]);
    expect(broken.code).toBe(1);
    const events = parseEvents(broken.stdout);
    expect(events.flatMap((e) => (e.type === "step.started" ? [e.step] : []))).toEqual([
      "build",
      "migrate",
      "rollback: build",
      "on failure: page",
      "on exit: tidy-up",
    ]);
    const printed = events.flatMap((e) => (e.type === "step.output" ? [e.data] : [])).join("");
    expect(printed).toContain("run failed at migrate; paging the on-call");
  });

  it("release-train.yaml calls the saved deploy-service through a server; its outputs reach the next step", async () => {
    const { adminToken } = await import("./helpers/server.js");
    const server = await sharedServer();
    const env = { RUNYARD_TOKEN: adminToken };
    const saved = await runCli(["workflow", "save", "examples/deploy-service.yaml", "--server", server.url], {
      env,
    });
    expect(saved.code, saved.stderr).toBe(0);
    const local = await runCli(["run", "examples/release-train.yaml"]);
    expect(local.code).toBe(2);
    expect(local.stderr).toContain("cannot run without a server");
    const result = await runCli(["run", "examples/release-train.yaml", "--server", server.url, "--json"], {
      env,
    });
    expect(result.code, result.stderr).toBe(0);
    const events = parseEvents(result.stdout);
    const printed = events.flatMap((e) => (e.type === "step.output" ? [e.data] : [])).join("");
    expect(printed).toContain("checking https://staging.example.test/releases/r-3 with 3 replicas");
    expect(printed).toContain("release train ended success");
    expect(events.some((e) => e.type === "step.called" && e.workflow === "deploy-service")).toBe(true);
  }, 120_000);

  it("deliver-webhook.sh signs a push with openssl and curl; the hook runs webhook-deploy.yaml with its branch", async () => {
    const { adminToken, waitForRun, isFinal, readEvents } = await import("./helpers/server.js");
    const server = await sharedServer();
    const env = { RUNYARD_TOKEN: adminToken };
    const saved = await runCli(["workflow", "save", "examples/webhook-deploy.yaml", "--server", server.url], {
      env,
    });
    expect(saved.code, saved.stderr).toBe(0);
    const hook = await runCli(
      [
        "hook",
        "create",
        "deploy-on-push",
        "--workflow",
        "webhook-deploy",
        "--var",
        "HOOK_BRANCH=$.ref",
        "--var",
        "HOOK_COMMIT=$.head_commit.id",
        "--server",
        server.url,
      ],
      { env },
    );
    expect(hook.code, hook.stderr).toBe(0);
    const secret = /^secret: (\S+)$/m.exec(hook.stdout)?.[1] ?? "";
    const deliverTo = /^deliver to: (\S+)$/m.exec(hook.stdout)?.[1] ?? "";
    const { spawnSync } = await import("node:child_process");
    const delivered = spawnSync("sh", ["examples/deliver-webhook.sh", deliverTo], {
      cwd: repoRoot,
      env: { ...process.env, SECRET: secret },
      encoding: "utf8",
    });
    expect(delivered.status, delivered.stderr).toBe(0);
    const answer = JSON.parse(delivered.stdout) as { run_id: string; missing_vars: string[] };
    expect(answer.missing_vars).toEqual([]);
    expect((await waitForRun(server.url, answer.run_id, isFinal)).status).toBe("success");
    const output = (await readEvents(server.url, answer.run_id))
      .flatMap((event) => (event.type === "step.output" ? [event.data] : []))
      .join("");
    expect(output).toBe("deploying refs/heads/main at c0ffee\n");
  }, 60_000);
});
