import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { credentialedPullMark } from "../../src/exec/docker/credentialed-pulls.js";
import { DockerEngine } from "../../src/exec/docker/docker-engine.js";
import { type BotView, waitBot as waitBotIn, waitRunText } from "../helpers/bots.js";
import { tempDir } from "../helpers/cli.js";
import {
  busyboxImage,
  commandImage,
  removeBotObjects,
  removeTestObjects,
  requireDocker,
  testRunLabel,
} from "../helpers/docker.js";
import { containersGone } from "../helpers/docker-events.js";
import { seedBareRepo } from "../helpers/git-repos.js";
import { startRegistry, type TestRegistry } from "../helpers/registry.js";
import {
  api,
  apiDeclaredSize,
  expectRunnerLoss,
  type Proc,
  readEvents,
  startRunner,
  startTestServer,
  type TestServer,
} from "../helpers/server.js";

// Its last tests freeze a runner and stop its bot while its lease lapses: the short lease of the
// files about a runner's loss (helpers/server.ts).
expectRunnerLoss();

/**
 * Bots attacked from outside (issue 10's review): another tenant's or user's member reaching a
 * bot that is not theirs, a stop that comes while the image is still building, and a bot that
 * runs another bot's image. A real server and runners, the real Docker engine.
 */

const haveDocker = await requireDocker();
const run = `bot-attacks-${process.pid}-${Date.now().toString(36)}`;
const engine = new DockerEngine();

let server: TestServer;
const runners: Proc[] = [];
const botIds: string[] = [];
let acme: string;
let acmeBob: string;
let globex: string;
let image: string;

async function token(body: Record<string, string>): Promise<string> {
  const answer = await api<{ token: string }>(server.url, "POST", "/api/tokens", body);
  expect(answer.status, JSON.stringify(answer.body)).toBe(201);
  return answer.body.token;
}

async function startBot(
  bearer: string,
  body: Record<string, unknown>,
): Promise<{ bot: BotView; run_id: string }> {
  const answer = await api<{ bot: BotView; run_id: string }>(server.url, "POST", "/api/bots", body, bearer);
  expect(answer.status, JSON.stringify(answer.body)).toBe(202);
  botIds.push(answer.body.bot.id);
  return answer.body;
}

const waitBot = (bearer: string, name: string, predicate: (bot: BotView) => boolean, timeoutMs?: number) =>
  waitBotIn(server.url, name, predicate, timeoutMs, bearer);

/**
 * Stops a bot as its owner; answers it stopped. A stop answers 409 "still stopping" when the
 * runner has not ended the container within the route's 15 s (a machine three times slower than
 * usual, once): the stop goes on, and the bot is then awaited until it is stopped.
 */
async function stopBot(bearer: string, name: string): Promise<BotView> {
  const answer = await api<BotView & { error?: { code: string; message: string } }>(
    server.url,
    "POST",
    `/api/bots/${name}/stop`,
    undefined,
    bearer,
  );
  if (answer.status === 409 && /still stopping/.test(answer.body.error?.message ?? ""))
    return waitBot(bearer, name, (bot) => bot.state === "stopped", 60_000);
  expect(answer.status, JSON.stringify(answer.body)).toBe(200);
  return answer.body;
}

/** A custom bot's archive: a Dockerfile FROM the busybox test image, its build slowed by `RUN`. */
async function archiveOf(dockerfileTail: string): Promise<string> {
  return archiveWith(`FROM ${await busyboxImage()}\n${dockerfileTail}`);
}

/** A custom bot's archive holding only this Dockerfile, base64 as the API takes it. */
function archiveWith(dockerfile: string): string {
  const project = tempDir("runyard-attack-bot-");
  writeFileSync(join(project, "Dockerfile"), dockerfile);
  const archive = join(tempDir(), "bot.tar.gz");
  execFileSync("tar", ["-czf", archive, "-C", project, "."]);
  return readFileSync(archive).toString("base64");
}

/** Builds `ref` FROM the busybox test image with `dockerfileTail`, and pushes it with the registry's login. */
async function pushPrivately(registry: TestRegistry, ref: string, dockerfileTail: string): Promise<void> {
  const project = tempDir("runyard-private-image-");
  writeFileSync(join(project, "Dockerfile"), `FROM ${await busyboxImage()}\n${dockerfileTail}`);
  execFileSync("docker", ["build", "-q", "-t", ref, "--label", `${testRunLabel}=${run}`, project], {
    stdio: "ignore",
  });
  execFileSync("docker", ["login", "-u", registry.username, "--password-stdin", registry.host], {
    input: registry.password,
    stdio: ["pipe", "ignore", "ignore"],
  });
  try {
    execFileSync("docker", ["push", ref], { stdio: "ignore" });
  } finally {
    execFileSync("docker", ["logout", registry.host], { stdio: "ignore" });
  }
}

describe.skipIf(!haveDocker)("bots attacked by other tenants and users", () => {
  beforeAll(async () => {
    image = await commandImage(
      `runyard-test-attack-${run}:1`,
      "trap 'exit 0' TERM; echo up; while true; do sleep 1 & wait $!; done",
      run,
    );
    server = await startTestServer(tempDir(), { RUNYARD_BOT_NETWORK: "none" });
    acme = await token({ kind: "user", name: "alice", tenant_id: "acme" });
    acmeBob = await token({ kind: "user", name: "bob", tenant_id: "acme" });
    globex = await token({ kind: "user", name: "mallory", tenant_id: "globex" });
    for (const tenant of ["acme", "globex"]) {
      const runnerToken = await token({ kind: "runner", name: `${tenant} runner`, tenant_id: tenant });
      runners.push(
        await startRunner(server.url, runnerToken, {
          id: `${tenant}-${run}`,
          env: { RUNYARD_LOG_LEVEL: process.env.DEBUG_RUNNER ? "info" : "error" },
        }),
      );
    }
  }, 240_000);

  afterAll(async () => {
    // SIGKILL: quick, and a failed test may leave a runner in any state; the bots' containers
    // are removed by label anyway.
    for (const runner of runners) await runner.kill("SIGKILL");
    await server?.proc.kill("SIGKILL");
    await removeBotObjects(botIds);
    await removeTestObjects(run);
  }, 60_000);

  it("another tenant's member reaches none of a bot: not by name, run id, events, cancel or the orchestrator API's POST /jobs", async () => {
    const { bot, run_id } = await startBot(acme, { name: "shared-name", image });
    await waitBot(acme, "shared-name", (b) => b.state === "running");
    for (const [method, path] of [
      ["GET", "/api/bots/shared-name"],
      ["GET", "/api/bots/shared-name/logs"],
      ["POST", "/api/bots/shared-name/stop"],
      ["DELETE", "/api/bots/shared-name"],
      ["GET", `/api/runs/${run_id}`],
      ["GET", `/api/runs/${run_id}/events`],
      ["POST", `/api/runs/${run_id}/cancel`],
    ] as const) {
      const answer = await api(server.url, method, path, undefined, globex);
      expect(answer.status, `${method} ${path}: ${JSON.stringify(answer.body)}`).toBe(404);
    }
    // The same name in the same tenant is bob's own namespace: alice's bot is not his either.
    expect((await api(server.url, "GET", "/api/bots/shared-name", undefined, acmeBob)).status).toBe(404);
    for (const action of ["status", "stop", "logs"]) {
      const answer = await api<{ status: string; error?: { code: string } }>(
        server.url,
        "POST",
        "/jobs",
        { blueprint: "bot_runner", data: { action, bot_id: "shared-name" } },
        globex,
      );
      expect(answer.body.status, `${action}: ${JSON.stringify(answer.body)}`).toBe("failure");
      expect(answer.body.error?.code).toBe("NOT_FOUND");
    }
    const list = await api<{ bots: BotView[] }>(server.url, "GET", "/api/bots", undefined, globex);
    expect(list.body.bots).toEqual([]);
    // Names are per tenant: globex's member takes the same name as if it were free.
    const { bot: theirs } = await startBot(globex, { name: "shared-name", image });
    expect(theirs.id).not.toBe(bot.id);
    expect((await stopBot(globex, "shared-name")).state).toBe("stopped");
    expect((await api(server.url, "DELETE", "/api/bots/shared-name", undefined, globex)).status).toBe(200);
    // Untouched: still running, for its owner.
    const untouched = await waitBot(acme, "shared-name", () => true);
    expect(untouched.state, JSON.stringify(untouched)).toBe("running");
    // Its output on the runner's disk is rotated: a flood cannot fill the disk.
    const [container] = await engine.docker.listContainers({ filters: { label: [`runyard.bot=${bot.id}`] } });
    const info = await engine.docker.getContainer(container!.Id).inspect();
    expect(info.HostConfig.LogConfig).toEqual({
      Type: "json-file",
      Config: { "max-size": "10m", "max-file": "2" },
    });
    expect((await stopBot(acme, "shared-name")).state).toBe("stopped");
    expect((await api(server.url, "DELETE", "/api/bots/shared-name", undefined, acme)).status).toBe(200);
    expect(bot.id).toMatch(/^bot_/);
  }, 120_000);

  it("a stop while the image still builds ends the bot stopped, and frees its slot", async () => {
    const archive = await archiveOf('RUN echo building-now && sleep 4\nCMD ["sh", "-c", "sleep 1000"]\n');
    const { run_id } = await startBot(acme, { name: "slow-build", archive });
    // The build is under way (its output is in the run's events) when the stop comes.
    await waitRunText(server.url, run_id, "building-now", acme);
    const buildLog = await api(server.url, "GET", "/api/bots/slow-build/logs?build=1", undefined, acme);
    expect(JSON.stringify(buildLog.body)).toContain("building-now");
    // Answered stopped, or (the runner slower than the route's 15 s) awaited until it is.
    const stopped = await stopBot(acme, "slow-build");
    expect(stopped.state).toBe("stopped");
    const events = await readEvents(server.url, run_id);
    expect(events.at(-1)).toMatchObject({ type: "run.finished", status: "canceled" });
    expect(
      await engine.docker.listContainers({
        all: true,
        filters: { label: [`runyard.bot=${stopped.id}`] },
      }),
    ).toEqual([]);
  }, 120_000);

  it("a bot cannot run another bot's built image (its code) by naming its tag", async () => {
    const archive = await archiveOf(
      'RUN echo alice-private-code > /code.txt\nCMD ["sh", "-c", "sleep 1000"]\n',
    );
    const { bot } = await startBot(acme, { name: "alice-bot", archive });
    await waitBot(acme, "alice-bot", (b) => b.state === "running");
    const theirs = `runyard-bot-${bot.id}:latest`;
    const answer = await api<{ bot?: BotView; error?: { code: string } }>(
      server.url,
      "POST",
      "/api/bots",
      { name: "bob-bot", image: theirs },
      acmeBob,
    );
    if (answer.status === 202) {
      botIds.push(answer.body.bot!.id);
      const ended = await waitBot(acmeBob, "bob-bot", (b) => b.state !== "pulling");
      expect(ended.state, "bob runs alice's image").toBe("crashed");
      expect(ended.error?.code).toBe("BOT_IMAGE_NOT_FOUND");
    } else {
      expect(answer.status).toBe(400);
    }
    await api(server.url, "POST", "/api/bots/alice-bot/stop", undefined, acme);
  }, 180_000);

  it("a custom bot cannot build on another bot's image, by its name or under another tag", async () => {
    const archive = await archiveOf(
      'RUN echo alice-base-secret > /base.txt\nCMD ["sh", "-c", "sleep 1000"]\n',
    );
    const { bot } = await startBot(acme, { name: "alice-base", archive });
    await waitBot(acme, "alice-base", (b) => b.state === "running");
    const theirs = `runyard-bot-${bot.id}:latest`;
    // The same image under a name that says nothing: its bot label still says whose it is.
    const innocent = `runyard-test-innocent-${run}:1`;
    execFileSync("docker", ["tag", theirs, innocent]);
    try {
      for (const [name, from] of [
        ["bob-from-name", `FROM ${theirs}`],
        ["bob-from-tag", `FROM ${innocent}`],
        ["bob-from-arg", `ARG B=${innocent}\nFROM $B`],
      ] as const) {
        const { run_id } = await startBot(acmeBob, {
          name,
          archive: archiveWith(`${from}\nRUN cat /base.txt\nCMD ["sleep", "1000"]\n`),
        });
        const ended = await waitBot(acmeBob, name, (b) => b.state !== "building");
        expect(ended.state, name).toBe("crashed");
        expect(ended.error?.code, name).toBe("BOT_BUILD_FAILED");
        const events = JSON.stringify(await readEvents(server.url, run_id));
        expect(events, name).not.toContain("alice-base-secret");
      }
    } finally {
      execFileSync("docker", ["rmi", innocent]);
      await api(server.url, "POST", "/api/bots/alice-base/stop", undefined, acme);
    }
  }, 180_000);

  it("a custom bot cannot build on a private registry's image that another user's bot pulled", async () => {
    const registry: TestRegistry = await startRegistry();
    const ref = `${registry.host}/private/base:${run}`;
    try {
      // Alice's private image, pushed with her login and now on the runner's engine.
      await pushPrivately(registry, ref, "RUN echo alice-registry-secret > /private.txt\n");
      const { run_id } = await startBot(acmeBob, {
        name: "bob-from-registry",
        archive: archiveWith(`FROM ${ref}\nRUN cat /private.txt\nCMD ["sleep", "1000"]\n`),
      });
      const ended = await waitBot(acmeBob, "bob-from-registry", (b) => b.state !== "building");
      expect(ended.state).toBe("crashed");
      expect(ended.error?.code).toBe("BOT_BUILD_FAILED");
      expect(ended.error?.message).toContain("without credentials");
      expect(JSON.stringify(await readEvents(server.url, run_id))).not.toContain("alice-registry-secret");
    } finally {
      execFileSync("docker", ["rmi", "-f", ref], { stdio: "ignore" });
      await registry.stop();
    }
  }, 180_000);

  it("an image one tenant's bot pulled with credentials serves no one else: not a bot naming it, a FROM, nor an executor: docker step", async () => {
    const registry: TestRegistry = await startRegistry();
    const ref = `${registry.host}/private/hub:${run}`;
    // Docker Hub is out of reach here, so what a pull of a private Docker Hub repository with
    // credentials leaves on the engine is made with tags: its name, and the mark such a pull
    // leaves (the mark a real pull leaves is checked on Alice's pull below).
    const hubName = `runyard-test-hub-${run}/private:1`;
    try {
      await pushPrivately(
        registry,
        ref,
        'RUN echo alice-hub-secret > /private.txt\nCMD ["sh", "-c", "cat /private.txt; sleep 1000"]\n',
      );
      // Only the registry has it; Alice's bot pulls it with her login.
      execFileSync("docker", ["rmi", ref], { stdio: "ignore" });
      await startBot(acme, {
        name: "alice-private",
        image: ref,
        registry: { username: registry.username, password: registry.password },
      });
      await waitBot(acme, "alice-private", (b) => b.state === "running");
      const tags = (await engine.docker.getImage(ref).inspect()).RepoTags;
      expect(tags).toContain(credentialedPullMark(ref));
      execFileSync("docker", ["tag", ref, hubName]);
      execFileSync("docker", ["tag", ref, credentialedPullMark(hubName)]);

      const { run_id: botRun } = await startBot(globex, { name: "mallory-hub", image: hubName });
      const ended = await waitBot(globex, "mallory-hub", (b) => !["building", "pulling"].includes(b.state));
      expect(ended.state, JSON.stringify(ended)).not.toBe("running");
      expect(["BOT_REGISTRY_UNREACHABLE", "BOT_REGISTRY_AUTH", "BOT_IMAGE_NOT_FOUND"]).toContain(
        ended.error?.code,
      );

      const { run_id: buildRun } = await startBot(globex, {
        name: "mallory-from",
        archive: archiveWith(`FROM ${hubName}\nRUN cat /private.txt\nCMD ["sleep", "1000"]\n`),
      });
      const built = await waitBot(globex, "mallory-from", (b) => b.state !== "building");
      expect(built.error?.code).toBe("BOT_BUILD_FAILED");
      expect(built.error?.message).toContain("without credentials");

      const step = await api<{ run_id: string }>(
        server.url,
        "POST",
        "/api/runs",
        {
          kind: "workflow",
          workflow: `name: boxed
inventory:
  hosts:
    box: {executor: docker, image: "${hubName}"}
steps:
  - name: read
    targets: [box]
    action: cmd.run
    args: {cmd: cat /private.txt, shell: sh}
`,
        },
        globex,
      );
      expect(step.status, JSON.stringify(step.body)).toBe(201);
      const stepEvents = await readEvents(server.url, step.body.run_id);
      expect(stepEvents.at(-1)).toMatchObject({ type: "run.finished", status: "failed" });
      expect(JSON.stringify(stepEvents)).toContain("pulled on this runner with a bot's registry credentials");
      for (const id of [botRun, buildRun, step.body.run_id]) {
        expect(JSON.stringify(await readEvents(server.url, id))).not.toContain("alice-hub-secret");
      }
    } finally {
      await api(server.url, "POST", "/api/bots/alice-private/stop", undefined, acme);
      execFileSync("sh", [
        "-c",
        `docker rmi -f ${ref} ${hubName} $(docker images -q --filter reference='runyard-pulled-with-credentials') 2>/dev/null; true`,
      ]);
      await registry.stop();
    }
  }, 240_000);

  it("archives that escape are refused through the API with the entry's name, and nothing is stored", async () => {
    const dir = tempDir("runyard-evil-archives-");
    // Each archive also holds a Dockerfile, so only the bad entry can be why it is refused.
    const script = `
import io, sys, tarfile, zipfile, gzip
out = sys.argv[1]
def tar(name, add, mode="w"):
    with tarfile.open(f"{out}/{name}", mode) as t:
        d = tarfile.TarInfo("Dockerfile"); body = b"FROM scratch\\n"; d.size = len(body); t.addfile(d, io.BytesIO(body))
        add(t)
def file(path, body=b"x"):
    def add(t):
        i = tarfile.TarInfo(path); i.size = len(body); t.addfile(i, io.BytesIO(body))
    return add
def link(path, target, kind):
    def add(t):
        i = tarfile.TarInfo(path); i.type = kind; i.linkname = target; t.addfile(i)
    return add
def device(t):
    i = tarfile.TarInfo("dev"); i.type = tarfile.CHRTYPE; i.devmajor = 1; i.devminor = 3; t.addfile(i)
tar("slip.tar", file("../../escaped.txt"))
tar("absolute.tar", file("/tmp/runyard-absolute.txt"))
tar("symlink.tar", lambda t: (link("out", "/etc", tarfile.SYMTYPE)(t), file("out/passwd")(t)))
tar("symlink-up.tar", link("up", "../../..", tarfile.SYMTYPE))
tar("hardlink.tar", link("shadow", "/etc/shadow", tarfile.LNKTYPE))
tar("device.tar", device)
tar("bomb.tar.gz", file("zeros", b"\\0" * (300 * 1024 * 1024)), "w:gz")
with zipfile.ZipFile(f"{out}/slip.zip", "w") as z:
    z.writestr("Dockerfile", "FROM scratch\\n"); z.writestr("../../zip-escaped.txt", "x")
`;

    execFileSync("python3", ["-c", script, dir]);
    const cases: [string, RegExp][] = [
      ["slip.tar", /escaped\.txt/],
      ["absolute.tar", /runyard-absolute\.txt/],
      ["symlink.tar", /"out/],
      ["symlink-up.tar", /"up"/],
      ["hardlink.tar", /"shadow"/],
      ["device.tar", /"dev"/],
      ["bomb.tar.gz", /zeros|expands|ratio/],
      ["slip.zip", /zip-escaped\.txt/],
    ];
    for (const [file, entry] of cases) {
      const answer = await api<{ error: { code: string; message: string; hint: string } }>(
        server.url,
        "POST",
        "/api/bots",
        { name: "evil", archive: readFileSync(join(dir, file)).toString("base64") },
        acme,
      );
      expect(answer.status, `${file}: ${JSON.stringify(answer.body)}`).toBe(400);
      expect(answer.body.error.code, file).toBe("ARCHIVE_REJECTED");
      expect(answer.body.error.message, file).toMatch(entry);
    }
    // Past the body limit (32 MB of archive, as base64): refused before it is read, 413.
    const huge = await apiDeclaredSize<{ error: { code: string } }>(
      server.url,
      "POST",
      "/api/bots",
      50 * 1024 * 1024,
      acme,
    );
    expect(huge.status).toBe(413);
    expect(huge.body.error.code).toBe("BODY_TOO_LARGE");
    expect((await api(server.url, "GET", "/api/bots/evil", undefined, acme)).status).toBe(404);
  }, 120_000);

  it("concurrent starts past the quota: exactly the quota's worth are taken", async () => {
    const names = Array.from({ length: 8 }, (_, i) => `rush-${i}`);
    const answers = await Promise.all(
      names.map((name) =>
        api<{ bot?: BotView; error?: { code: string } }>(
          server.url,
          "POST",
          "/api/bots",
          { name, image },
          acmeBob,
        ),
      ),
    );
    const taken = answers.filter((answer) => answer.status === 202);
    for (const answer of taken) botIds.push(answer.body.bot!.id);
    expect(taken.length, JSON.stringify(answers.map((a) => a.status))).toBe(3);
    for (const answer of answers.filter((a) => a.status !== 202))
      expect(answer.body.error?.code).toBe("QUOTA_EXCEEDED");
    for (const answer of taken) {
      await waitBot(acmeBob, answer.body.bot!.name, (b) => b.state === "running");
      const stopped = await api<BotView>(
        server.url,
        "POST",
        `/api/bots/${answer.body.bot!.name}/stop`,
        undefined,
        acmeBob,
      );
      expect(stopped.body.state).toBe("stopped");
    }
  }, 120_000);

  it("a git source on the runner's own disk (a path or file://, e.g. its workspace mirrors) is not cloned", async () => {
    const bare = seedBareRepo(join(tempDir("runyard-private-mirror-"), "private.git"));
    const sources: [string, string][] = [
      ["local-path", bare],
      ["local-file", `file://${bare}`],
    ];
    for (const [name, url] of sources) {
      await startBot(acme, { name, git: { url } });
      const ended = await waitBot(acme, name, (b) => b.state !== "building");
      expect(ended.state, name).toBe("crashed");
      expect(ended.error?.code, name).toBe("BOT_BUILD_FAILED");
      expect(ended.error?.message, name).toMatch(/runner's own disk/);
    }
  }, 60_000);

  // Last: it freezes globex's runner.
  it("a stop while the bot's runner has gone quiet ends it stopped (not crashed), and its container goes when the runner is back", async () => {
    const { bot } = await startBot(globex, { name: "frozen", image });
    await waitBot(globex, "frozen", (b) => b.state === "running");
    const globexRunner = runners[1]!;
    // Frozen, its socket still open: its lease lapses while the stop waits.
    globexRunner.child.kill("SIGSTOP");
    let answer: { status: number; body: BotView };
    try {
      answer = await api<BotView>(server.url, "POST", "/api/bots/frozen/stop", undefined, globex);
    } finally {
      globexRunner.child.kill("SIGCONT");
    }
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect(answer.body.state, JSON.stringify(answer.body)).toBe("stopped");
    expect(answer.body.error).toBeNull();
    await containersGone(
      engine.docker,
      `runyard.bot=${bot.id}`,
      () => `the stopped bot's container still runs:\n${globexRunner.output()}`,
      30_000,
    );
  }, 90_000);

  // After the frozen runner: it restarts the server. A stop that comes before the runner is back
  // ends the job on the server (`done`); the runner comes back still holding it and is told to
  // cancel it (takeInventory), so the container stops instead of running on to its lifetime.
  it("a server killed and started again keeps a running bot (same container) and can still stop it", async () => {
    const { bot } = await startBot(acme, { name: "survivor", image });
    await waitBot(acme, "survivor", (b) => b.state === "running");
    const containers = () =>
      engine.docker.listContainers({ all: true, filters: { label: [`runyard.bot=${bot.id}`] } });
    const [before] = await containers();
    await server.proc.kill("SIGKILL");
    server = await startTestServer(
      server.home,
      { RUNYARD_BOT_NETWORK: "none" },
      Number(new URL(server.url).port),
    );
    const after = await waitBot(acme, "survivor", (b) => b.state === "running");
    expect(after.error).toBeNull();
    expect((await containers()).map((c) => c.Id)).toEqual([before!.Id]);
    const stopped = await api<BotView>(server.url, "POST", "/api/bots/survivor/stop", undefined, acme);
    expect(stopped.status, JSON.stringify(stopped.body)).toBe(200);
    expect(stopped.body.state).toBe("stopped");
    // The runner may not be back yet when the stop comes: its container goes when it is.
    await containersGone(
      engine.docker,
      `runyard.bot=${bot.id}`,
      () => `the stopped bot's container still runs:\n${runners[0]!.output()}`,
      30_000,
    );
  }, 120_000);
});
