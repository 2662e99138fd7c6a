import { chownSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunEvent } from "../src/core/events.js";
import { StepAttemptRequest } from "../src/core/step-attempt.js";
import { createExecutor } from "../src/exec/create-executor.js";
import { createDockerExecutors } from "../src/exec/docker/create-docker-executors.js";
import { DockerEngine } from "../src/exec/docker/docker-engine.js";
import { LocalStepRunner } from "../src/exec/local-runner.js";
import { finished, parseEvents, runCli, tempDir, writeWorkflow } from "./helpers/cli.js";
import { busyboxImage, requireDocker } from "./helpers/docker.js";
import {
  adminToken,
  api,
  isFinal,
  type Proc,
  readEvents,
  runnerToken,
  startRunner,
  startTestServer,
  stepDir,
  submit,
  type TestServer,
  waitForRun,
} from "./helpers/server.js";
import { startModelServer, turns } from "./model-server/server.js";

const haveDocker = await requireDocker();
const engine = new DockerEngine();
let image = "";
/** Every run a test started: its containers (labelled `runyard.run=<id>`) are this file's alone. */
const runIds = new Set<string>();

beforeAll(async () => {
  if (haveDocker) image = await busyboxImage();
});

afterAll(async () => {
  if (!haveDocker) return;
  // The executor removes its containers; this only clears up after a test that failed midway.
  for (const runId of runIds) {
    for (const container of await containersOf(runId)) await engine.remove(container.Id);
  }
});

/**
 * A workspace for a step, in the folders the runner's step_cwd_roots lists (`stepDir`). Under a
 * root runner (as in CI) the container runs as the workspace's owner, so it is given to an
 * ordinary uid; under another user the container runs as that user.
 */
function workspace(): { dir: string; uid: number } {
  const dir = stepDir();
  const uid = process.getuid?.() ?? 0;
  if (uid !== 0) return { dir, uid };
  chownSync(dir, 1234, 1234);
  return { dir, uid: 1234 };
}

function containersOf(runId: string) {
  return engine.docker.listContainers({ all: true, filters: { label: [`runyard.run=${runId}`] } });
}

/** Resolves once a container of the run is running (Docker has no push for that short of events). */
async function containerRunning(runId: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const list = await containersOf(runId);
    if (list.some((c) => c.State === "running")) return;
    if (Date.now() > deadline) throw new Error(`no container of run ${runId} ran within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * A workflow whose one host runs its steps in the busybox image; `host` adds settings. The image
 * is quoted: a short image id is 12 hex digits, and one that happens to be all decimal digits, or
 * digits around one `e` (`8675e6677835`), is a YAML number unquoted.
 */
function dockerFlow(steps: string, host = "", hostImage = image): string {
  return `name: docker-steps
inventory:
  hosts:
    box:
      executor: docker
      image: ${JSON.stringify(hostImage)}
${host}steps:
${steps}`;
}

function runIdOf(stdout: string): string | undefined {
  const first = stdout.split("\n")[0];
  if (!first) return undefined;
  try {
    return (JSON.parse(first) as RunEvent).run_id;
  } catch {
    return undefined;
  }
}

function outputOf(events: RunEvent[], step: string, stream: "stdout" | "stderr"): string {
  return events
    .flatMap((e) => (e.type === "step.output" && e.step === step && e.stream === stream ? [e.data] : []))
    .join("");
}

describe.skipIf(!haveDocker)("the docker executor with runyard run", () => {
  it("runs a step in the image, streams its stdout and stderr, and hands an export to the next step", async () => {
    const { dir, uid } = workspace();
    writeFileSync(join(dir, "input.txt"), "from the workspace\n");
    const file = writeWorkflow(
      dockerFlow(`  - name: produce
    action: cmd.run
    args:
      shell: sh
      cwd: ${dir}
      cmd: |
        cat input.txt
        echo "running as $(id -u)" >&2
        echo made > made.txt
        echo "GREETING=hello from a container" >> "$RUNYARD_OUTPUT"
  - name: consume
    action: shell.run
    args:
      shell: sh
      script: echo "got $GREETING"
`),
    );
    const result = await runCli(["run", file, "--json"]);
    const events = parseEvents(result.stdout);
    runIds.add(events[0]!.run_id);
    expect(result.code, result.stderr + result.stdout).toBe(0);
    expect(outputOf(events, "produce", "stdout")).toBe("from the workspace\n");
    expect(outputOf(events, "produce", "stderr")).toBe(`running as ${uid}\n`);
    expect(readFileSync(join(dir, "made.txt"), "utf8")).toBe("made\n");
    expect(statSync(join(dir, "made.txt")).uid).toBe(uid);
    expect(outputOf(events, "consume", "stdout")).toBe("got hello from a container\n");
    expect(finished(events).vars).toMatchObject({ GREETING: "hello from a container" });
    expect(await containersOf(events[0]!.run_id)).toEqual([]);
  });

  it("runs the container hardened, with the host's limits and the run's labels", async () => {
    const { dir, uid } = workspace();
    let inspected: Awaited<ReturnType<ReturnType<typeof engine.docker.getContainer>["inspect"]>> | undefined;
    let problem: unknown;
    const file = writeWorkflow(
      dockerFlow(
        `  - name: wait
    action: shell.run
    timeout_seconds: 30
    args:
      shell: sh
      cwd: ${dir}
      script: |
        echo waiting
        until [ -e go ]; do sleep 0.05; done
        echo done
`,
        "      memory: 128m\n      cpus: 0.25\n      pids: 50\n",
      ),
    );
    const result = await runCli(["run", file, "--json"], {
      onStdout: (chunk) => {
        // Known at once, so that afterAll clears the container even when this test fails midway.
        const seen = runIdOf(chunk);
        if (seen) runIds.add(seen);
        if (!chunk.includes('"data":"waiting\\n"') || inspected || problem) return;
        void (async () => {
          const runId = runIdOf(chunk) ?? "";
          const [container] = await containersOf(runId);
          inspected = await engine.docker.getContainer(container!.Id).inspect();
        })()
          .catch((error: unknown) => {
            problem = error;
          })
          .finally(() => writeFileSync(join(dir, "go"), ""));
      },
    });
    expect(problem).toBeUndefined();
    expect(result.code, result.stderr + result.stdout).toBe(0);
    const runId = parseEvents(result.stdout)[0]!.run_id;
    runIds.add(runId);
    const host = inspected!.HostConfig;
    expect(host.CapDrop).toEqual(["ALL"]);
    expect(host.SecurityOpt).toEqual(["no-new-privileges"]);
    expect(host.Privileged).toBe(false);
    expect(host.ReadonlyRootfs).toBe(true);
    expect(host.Memory).toBe(128 * 1024 * 1024);
    expect(host.MemorySwap).toBe(128 * 1024 * 1024);
    expect(host.NanoCpus).toBe(250_000_000);
    expect(host.PidsLimit).toBe(50);
    expect(host.NetworkMode).toBe("none");
    expect(inspected!.Config.User).toBe(`${uid}:${uid}`);
    expect(inspected!.Config.Labels).toMatchObject({
      "runyard.managed": "1",
      "runyard.run": runId,
      "runyard.step": "wait",
      "runyard.host": "box",
    });
    expect(inspected!.Mounts.map((m) => m.Destination)).toContain(dir);
    expect(inspected!.Mounts.some((m) => m.Source.includes("docker.sock"))).toBe(false);
    expect(await containersOf(runId)).toEqual([]);
  });

  it("cancel (Ctrl-C) ends the step canceled and removes its container", async () => {
    const file = writeWorkflow(
      dockerFlow(`  - name: long
    action: shell.run
    args:
      shell: sh
      script: |
        echo waiting
        sleep 300
`),
    );
    let runId: string | undefined;
    const result = await runCli(["run", file, "--json"], {
      env: { RUNYARD_KILL_GRACE_MS: "300" },
      onStdout: (chunk, child) => {
        runId ??= runIdOf(chunk);
        if (chunk.includes('"data":"waiting\\n"')) child.kill("SIGINT");
      },
    });
    runIds.add(runId!);
    expect(result.code, result.stderr + result.stdout).toBe(130);
    const end = finished(parseEvents(result.stdout));
    expect(end.status).toBe("canceled");
    expect(end.steps).toEqual([expect.objectContaining({ name: "long", status: "canceled" })]);
    expect(await containersOf(runId!)).toEqual([]);
  });

  it("a step past its timeout ends timeout and its container is removed", async () => {
    const file = writeWorkflow(
      dockerFlow(`  - name: slow
    action: shell.run
    timeout_seconds: 1
    args:
      shell: sh
      script: sleep 300
`),
    );
    const result = await runCli(["run", file, "--json"], { env: { RUNYARD_KILL_GRACE_MS: "300" } });
    const events = parseEvents(result.stdout);
    runIds.add(events[0]!.run_id);
    expect(result.code).toBe(1);
    const end = finished(events);
    expect(end.status).toBe("timeout");
    expect(end.steps).toEqual([expect.objectContaining({ name: "slow", status: "timeout" })]);
    expect(await containersOf(events[0]!.run_id)).toEqual([]);
  });

  it("an image that declares a VOLUME leaves no volume behind once its step's container is removed", async () => {
    const tag = "runyard-test-volume:1";
    const context = tempDir();
    writeFileSync(join(context, "Dockerfile"), `FROM ${image}\nLABEL runyard.test=1\nVOLUME /data\n`);
    await engine.build(context, tag, () => {}, { "runyard.test": "1" });
    const volumes = async () =>
      new Set(((await engine.docker.listVolumes()).Volumes ?? []).map((volume) => volume.Name));
    const before = await volumes();
    const file = writeWorkflow(
      dockerFlow(
        `  - name: write
    action: shell.run
    args:
      shell: sh
      script: test -d /data && echo kept
`,
        "",
        tag,
      ),
    );
    const result = await runCli(["run", file, "--json"]);
    const events = parseEvents(result.stdout);
    runIds.add(events[0]!.run_id);
    expect(result.code, result.stderr + result.stdout).toBe(0);
    expect(outputOf(events, "write", "stdout")).toBe("kept\n");
    expect([...(await volumes())].filter((name) => !before.has(name))).toEqual([]);
  });

  it("an image missing on the machine fails the step at once, with a hint to pull or build it", async () => {
    const file = writeWorkflow(
      dockerFlow(
        `  - name: nothing
    action: cmd.run
    args:
      cmd: echo never
`,
        "",
        "runyard-test-not-built:1",
      ),
    );
    const result = await runCli(["run", file, "--json"]);
    const events = parseEvents(result.stdout);
    runIds.add(events[0]!.run_id);
    expect(result.code).toBe(1);
    const step = events.find((e) => e.type === "step.finished");
    expect(step).toMatchObject({
      status: "failed",
      error: {
        message: expect.stringContaining("image runyard-test-not-built:1 is not on this runner"),
        hint: expect.stringContaining("docker pull runyard-test-not-built:1"),
      },
    });
  });
});

describe.skipIf(!haveDocker)("the docker executor on a server's runner", () => {
  let server: TestServer;
  let runner: Proc;

  beforeAll(async () => {
    server = await startTestServer();
    runner = await startRunner(server.url, await runnerToken(server.url), { id: `docker-${process.pid}` });
  });

  afterAll(async () => {
    await runner?.kill();
    await server?.proc.kill();
  });

  it("runs a docker host's steps in containers on a runner with the docker label, output as step.output", async () => {
    const { body: runners } = await api<Array<{ id: string; labels: string[] }>>(
      server.url,
      "GET",
      "/api/runners",
    );
    expect(runners.find((r) => r.id === `docker-${process.pid}`)?.labels).toContain("docker");
    const runId = await submit(
      server.url,
      dockerFlow(`  - name: produce
    action: cmd.run
    args:
      shell: sh
      cmd: |
        echo out
        echo err >&2
        echo "VALUE=42" >> "$RUNYARD_OUTPUT"
  - name: consume
    action: cmd.run
    args:
      shell: sh
      cmd: echo "value is $VALUE"
`),
    );
    runIds.add(runId);
    const run = await waitForRun(server.url, runId, isFinal, 120_000);
    expect(run.status, JSON.stringify(run)).toBe("success");
    const events = await readEvents(server.url, runId);
    expect(outputOf(events, "produce", "stdout")).toBe("out\n");
    expect(outputOf(events, "produce", "stderr")).toBe("err\n");
    expect(outputOf(events, "consume", "stdout")).toBe("value is 42\n");
    expect(await containersOf(runId)).toEqual([]);
  }, 150_000);

  it("cancelling the run stops the step's container and removes it", async () => {
    const runId = await submit(
      server.url,
      dockerFlow(`  - name: long
    action: shell.run
    args:
      shell: sh
      script: sleep 300
`),
    );
    runIds.add(runId);
    await containerRunning(runId);
    const cancel = await api(server.url, "POST", `/api/runs/${runId}/cancel`);
    expect(cancel.status).toBeLessThan(300);
    const run = await waitForRun(server.url, runId, isFinal);
    expect(run.status).toBe("canceled");
    expect(run.steps).toEqual([expect.objectContaining({ name: "long", status: "canceled" })]);
    expect(await containersOf(runId)).toEqual([]);
  });

  it("a runner killed mid-step removes that step's container when it starts again", async () => {
    const id = `docker-crash-${process.pid}`;
    const home = tempDir();
    const token = await runnerToken(server.url, "crashers");
    const first = await startRunner(server.url, token, {
      id,
      group: "crashers",
      env: { RUNYARD_HOME: home },
    });
    const runId = await submit(
      server.url,
      dockerFlow(
        `  - name: long
    action: shell.run
    args:
      shell: sh
      script: sleep 300
`,
        "      group: crashers\n",
      ),
    );
    runIds.add(runId);
    await containerRunning(runId);
    // It names its runner and its install, which is what the next start removes by.
    expect((await containersOf(runId))[0]?.Labels).toMatchObject({
      "runyard.runner": id,
      "runyard.install": expect.stringMatching(/^[0-9a-f]{16}$/),
    });
    await first.kill("SIGKILL");
    // Nothing of the dead runner stopped it: the container outlives its runner until the restart.
    expect((await containersOf(runId)).map((c) => c.State)).toEqual(["running"]);
    const second = await startRunner(server.url, token, {
      id,
      group: "crashers",
      env: { RUNYARD_HOME: home },
    });
    try {
      expect(await containersOf(runId)).toEqual([]);
    } finally {
      await api(server.url, "POST", `/api/runs/${runId}/cancel`);
      await second.kill();
    }
  });

  it("a step container whose image is labelled for a bot is never taken for that bot when its runner restarts", async () => {
    // An admin's run may use any image; one that presets runyard.bot must not make its step's
    // container read as that bot's, which a restarting runner reports and removes as a bot.
    const botImage = await botLabelledImage();
    const id = `docker-botlabel-${process.pid}`;
    const home = tempDir();
    const token = await runnerToken(server.url, "botlabel");
    const env = { RUNYARD_HOME: home, RUNYARD_LOG_LEVEL: "info" };
    const first = await startRunner(server.url, token, { id, group: "botlabel", env });
    const runId = await submit(
      server.url,
      dockerFlow(
        `  - name: long
    action: shell.run
    args:
      shell: sh
      script: sleep 300
`,
        "      group: botlabel\n",
        botImage,
      ),
    );
    runIds.add(runId);
    try {
      await containerRunning(runId);
      // What the runner's bot code reads: no bot id, so the container is no bot's.
      expect((await containersOf(runId))[0]?.Labels).toMatchObject({
        "runyard.bot": "",
        "runyard.runner": id,
      });
    } finally {
      await first.kill("SIGKILL");
    }
    const second = await startRunner(server.url, token, { id, group: "botlabel", env });
    try {
      await second.waitFor("removed step containers left by this runner's previous life");
      expect(await containersOf(runId)).toEqual([]);
      expect(second.output()).not.toContain("b-other");
    } finally {
      await api(server.url, "POST", `/api/runs/${runId}/cancel`);
      await second.kill();
    }
  });

  it("a starting runner leaves another install's step containers under its own id alone, and those that name no install", async () => {
    const id = `docker-installs-${process.pid}`;
    const token = await runnerToken(server.url, "installs");
    // Another install on the same engine whose runner has the same id: its step runs on; and one
    // made before containers named their install.
    const runId = `run_other_install_${process.pid}`;
    runIds.add(runId);
    const made: string[] = [];
    for (const install of ["0123456789abcdef", undefined]) {
      const container = await engine.docker.createContainer({
        Image: image,
        Cmd: ["sleep", "300"],
        Labels: {
          "runyard.managed": "1",
          "runyard.runner": id,
          "runyard.step": "long",
          "runyard.run": runId,
          ...(install ? { "runyard.install": install } : {}),
        },
      });
      await container.start();
      made.push(container.id);
    }
    const runner = await startRunner(server.url, token, { id, group: "installs" });
    try {
      const left = await containersOf(runId);
      expect(left.map((c) => [c.Id, c.State]).sort()).toEqual(made.map((c) => [c, "running"]).sort());
    } finally {
      await runner.kill();
    }
  });

  it("an agent task's test command runs in a container when its tests name an executor", async () => {
    const { dir } = workspace();
    const model = await startModelServer(
      turns(
        {
          toolCalls: [{ name: "write_file", input: { path: "hello.txt", content: "hello\n" }, id: "call_1" }],
        },
        { text: "Wrote hello.txt." },
      ),
    );
    try {
      const answer = await api<{ run_id: string }>(server.url, "POST", "/api/runs", {
        kind: "agent",
        agent: "openai",
        prompt: "Create hello.txt saying hello.",
        cwd: dir,
        env: { OPENAI_BASE_URL: `${model.url}/v1`, OPENAI_API_KEY: "sk-test-docker-tests" },
        tests: {
          command: "grep -qx hello hello.txt && echo \"pid 1 is $(cat /proc/1/cmdline | tr '\\0' ' ')\"",
          executor: { image, memory: "64m" },
        },
      });
      expect(answer.status, JSON.stringify(answer.body)).toBe(201);
      const runId = answer.body.run_id;
      runIds.add(runId);
      const run = await waitForRun(server.url, runId, isFinal, 60_000);
      const events = await readEvents(server.url, runId);
      expect(run.status, JSON.stringify(events.at(-1))).toBe("success");
      // docker-init is PID 1 of a step's container only: on the runner, PID 1 is its own init. It
      // starts the command through the checker of the worktree it mounted (native/cwd-check.c).
      const pid1 = outputOf(events, "test", "stdout");
      expect(pid1).toMatch(/^pid 1 is \/sbin\/docker-init -- \/\.runyard-cwd-check \d+:\d+ sh -c /);
      expect(pid1.replace(/^.*? -- \S+ \S+ /, "")).toBe(
        "sh -c grep -qx hello hello.txt && echo \"pid 1 is $(cat /proc/1/cmdline | tr '\\0' ' ')\" \n",
      );
      expect(await containersOf(runId)).toEqual([]);
    } finally {
      await model.stop();
    }
  });

  it("an agent task's tests playbook runs in a container where its host says executor docker", async () => {
    const { dir } = workspace();
    const model = await startModelServer(turns({ text: "Nothing to change." }));
    try {
      const playbook = `name: checks
inventory: {hosts: {box: {executor: docker, image: ${image}}}}
steps:
  - name: init
    shell: sh
    command: cat /proc/1/cmdline | tr '\\0' ' '
`;
      const answer = await api<{ run_id: string }>(server.url, "POST", "/api/runs", {
        kind: "agent",
        agent: "openai",
        prompt: "Look around.",
        cwd: dir,
        env: { OPENAI_BASE_URL: `${model.url}/v1`, OPENAI_API_KEY: "sk-test-docker-tests" },
        tests: { playbook },
      });
      expect(answer.status, JSON.stringify(answer.body)).toBe(201);
      const runId = answer.body.run_id;
      runIds.add(runId);
      const run = await waitForRun(server.url, runId, isFinal, 60_000);
      const events = await readEvents(server.url, runId);
      expect(run.status, JSON.stringify(events.at(-1))).toBe("success");
      expect(outputOf(events, "test: init", "stdout")).toMatch(/^\/sbin\/docker-init -- /);
    } finally {
      await model.stop();
    }
  });

  it("an agent task's tests executor is checked at submit", async () => {
    const answer = await api<{ error: { code: string; message: string; hint: string } }>(
      server.url,
      "POST",
      "/api/runs",
      {
        kind: "agent",
        agent: "openai",
        prompt: "x",
        tests: { command: "true", executor: { image, memory: "lots" } },
      },
    );
    expect(answer.status).toBe(400);
    expect(answer.body.error).toMatchObject({
      code: "INVALID_INPUT",
      message: 'tests.executor: memory must be a size like 256m, got "lots"',
      hint: expect.stringContaining("512m"),
    });
  });
});

/** The containers Docker created for a run since `since` (seconds): none, when the runner refused first. */
async function containersCreated(runId: string, since: number): Promise<number> {
  const stream = (await engine.docker.getEvents({
    since,
    until: Math.ceil(Date.now() / 1000) + 1,
    filters: { type: ["container"], event: ["create"], label: [`runyard.run=${runId}`] },
  })) as NodeJS.ReadableStream;
  let text = "";
  for await (const chunk of stream) text += chunk.toString();
  return text.split("\n").filter((line) => line.trim() !== "").length;
}

/** The busybox image again, labelled as runyard labels an image it builds for a bot. */
async function botLabelledImage(): Promise<string> {
  const tag = "runyard-test-bot-labelled:1";
  const context = tempDir();
  writeFileSync(join(context, "Dockerfile"), `FROM ${image}\nLABEL runyard.test=1\n`);
  await engine.build(context, tag, () => {}, {
    "runyard.test": "1",
    "runyard.managed": "1",
    "runyard.bot": "b-other",
  });
  return tag;
}

describe.skipIf(!haveDocker)("a member's step containers", () => {
  let server: TestServer;
  const runners: Proc[] = [];
  let member = "";
  let botImage = "";

  beforeAll(async () => {
    server = await startTestServer();
    const token = async (body: Record<string, string>) =>
      (await api<{ token: string }>(server.url, "POST", "/api/tokens", body)).body.token;
    member = await token({ kind: "user", name: "acme-dev", tenant_id: "acme" });
    const acmeRunner = await token({ kind: "runner", name: "acme runner", tenant_id: "acme" });
    runners.push(await startRunner(server.url, acmeRunner, { id: `acme-docker-${process.pid}` }));
    runners.push(
      await startRunner(server.url, await runnerToken(server.url), { id: `global-docker-${process.pid}` }),
    );
    botImage = await botLabelledImage();
  });

  afterAll(async () => {
    await Promise.all(runners.map((runner) => runner.kill()));
    await server?.proc.kill();
  });

  const step = `  - name: look
    action: cmd.run
    args:
      shell: sh
      cmd: echo ran
`;

  async function submitAs(token: string, workflow: string) {
    return api<{ run_id: string; error: { code: string; message: string; hint: string } }>(
      server.url,
      "POST",
      "/api/runs",
      { kind: "workflow", workflow },
      token,
    );
  }

  it("the server refuses another network than none or host, an image id or a bot's image, at its line and column; host runs", async () => {
    for (const network of ["container:runyard-bot-b1", "bridge", "tenant-b-net"]) {
      const answer = await submitAs(member, dockerFlow(step, `      network: ${network}\n`));
      expect(answer.status, network).toBe(400);
      expect(answer.body.error, network).toMatchObject({
        code: "INVALID_INPUT",
        message: `workflow.yaml:7:16: host "box" asks for the network ${JSON.stringify(network)}; a member's step containers may have network none or host`,
        hint: expect.stringContaining("network: host"),
      });
    }
    const { Id } = await engine.docker.getImage(image).inspect();
    for (const named of [Id, Id.slice("sha256:".length, "sha256:".length + 12), "runyard-bot-b1:latest"]) {
      const answer = await submitAs(member, dockerFlow(step, "", named));
      expect(answer.status, named).toBe(400);
      expect(answer.body.error.code, named).toBe("INVALID_INPUT");
      expect(answer.body.error.message, named).toMatch(/^workflow\.yaml:6:14: host "box" names /);
      expect(answer.body.error.hint, named).toMatch(/image/);
    }
    // network: host is the runner's own, which a step run as a process has too.
    const answer = await submitAs(member, dockerFlow(step, "      network: host\n"));
    expect(answer.status, JSON.stringify(answer.body)).toBe(201);
    runIds.add(answer.body.run_id);
    const run = await waitForRun(server.url, answer.body.run_id, isFinal, 60_000);
    expect(run.status, JSON.stringify(run)).toBe("success");
    expect(outputOf(await readEvents(server.url, answer.body.run_id), "look", "stdout")).toBe("ran\n");
  });

  it("the runner refuses a bot's image by its labels, whatever its name, before creating a container; an admin's run may use it", async () => {
    const since = Math.floor(Date.now() / 1000) - 1;
    const answer = await submitAs(member, dockerFlow(step, "", botImage));
    expect(answer.status, JSON.stringify(answer.body)).toBe(201);
    const runId = answer.body.run_id;
    runIds.add(runId);
    const run = await waitForRun(server.url, runId, isFinal, 60_000);
    expect(run.status).toBe("failed");
    const finished = (await readEvents(server.url, runId)).find((e) => e.type === "step.finished");
    expect(finished).toMatchObject({
      status: "failed",
      error: {
        code: "STEP_CONTAINER_NOT_ALLOWED",
        message: `image "${botImage}" of host "box" was built by runyard for a bot; a member's step containers may not run in a bot's image (refused by the runner)`,
        hint: expect.stringContaining("docker build"),
      },
    });
    expect(await containersCreated(runId, since)).toBe(0);
    // A platform admin's run is not held to a member's rules: the same image, on another container's network.
    const other = await engine.docker.createContainer({
      Image: image,
      Cmd: ["sleep", "120"],
      Labels: { "runyard.test": "1" },
      HostConfig: { NetworkMode: "none", AutoRemove: true },
    });
    try {
      await other.start();
      const admin = await submitAs(
        adminToken,
        dockerFlow(step, `      network: container:${other.id}\n`, botImage),
      );
      expect(admin.status, JSON.stringify(admin.body)).toBe(201);
      runIds.add(admin.body.run_id);
      const ran = await waitForRun(server.url, admin.body.run_id, isFinal, 60_000);
      expect(ran.status, JSON.stringify(await readEvents(server.url, admin.body.run_id))).toBe("success");
    } finally {
      await other.remove({ force: true }).catch(() => {});
    }
  });
});

describe.skipIf(!haveDocker)(
  "a runner's check of a step container, for a run from a server that checked nothing",
  () => {
    it("refuses a member's attempt on another container's network or an image id before creating a container", async () => {
      const runner = new LocalStepRunner(createExecutor({ baseEnv: {}, killGraceMs: 1000 }), {
        killGraceMs: 1000,
        containers: createDockerExecutors({ engine }),
        confineContainers: true,
      });
      const { Id } = await engine.docker.getImage(image).inspect();
      const container = { image, memory_bytes: 64 * 1024 * 1024, cpus: 0.5, pids: 50, network: "none" };
      const cases = [
        { container: { ...container, network: "container:runyard-bot-b1" }, refused: true },
        { container: { ...container, image: Id }, refused: true },
        { container: { ...container, image: Id }, unrestricted: true, refused: false },
      ];
      for (const [index, { refused, ...given }] of cases.entries()) {
        const runId = `confined-${process.pid}-${index}`;
        runIds.add(runId);
        const since = Math.floor(Date.now() / 1000) - 1;
        const result = await runner.runAttempt(
          StepAttemptRequest.parse({
            run_id: runId,
            step: "s",
            host: "box",
            attempt: 1,
            action: "cmd.run",
            script: "echo ran",
            shell: "sh",
            env: {},
            ...given,
          }),
          { onOutput: () => {}, signal: new AbortController().signal },
        );
        if (refused) {
          expect(result.error?.code, JSON.stringify(given)).toBe("STEP_CONTAINER_NOT_ALLOWED");
          expect(result.error?.message).toContain("(refused by the runner)");
          expect(await containersCreated(runId, since)).toBe(0);
        } else {
          // A platform admin's attempt is not held to a member's rules.
          expect(result.status, JSON.stringify(result.error)).toBe("success");
          expect(await containersCreated(runId, since)).toBe(1);
        }
      }
    });
  },
);
