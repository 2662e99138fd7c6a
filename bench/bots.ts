import { type ChildProcess, execFile } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { botContainer } from "../src/bots/container-spec.js";
import { simpleBuildContext } from "../src/bots/simple-build.js";
import { DockerEngine } from "../src/exec/docker/docker-engine.js";
import { admin, runnerProcess, serverProcess } from "./server.js";
import { type BenchResult, type BenchRow, timed } from "./table.js";

const run = promisify(execFile);

/** Every container and image the bot benches make carries this label, with the bench's run. */
const benchRunLabel = "runyard.bench.run";

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
};
const range = (values: number[]): string =>
  `${Math.min(...values).toFixed(0)}-${Math.max(...values).toFixed(0)}`;
const ms = (values: number[]): string => `${median(values).toFixed(0)} ms (${range(values)})`;

/** Why the bot benches cannot run here, or undefined when they can. */
async function missing(engine: DockerEngine): Promise<string | undefined> {
  if (!(await engine.ping())) return "no Docker engine answers on /var/run/docker.sock";
  if (!existsSync("/usr/bin/busybox")) return "no /usr/bin/busybox to build the bench image from";
  try {
    await run("docker", ["version", "--format", "{{.Server.Version}}"]);
  } catch {
    return "no docker CLI for the baseline";
  }
  return undefined;
}

/**
 * A busybox image from the host's busybox (nothing can be pulled): `FROM scratch`, its applets
 * in /bin, and a shell that runs until SIGTERM, which it traps so a stop is not a 10 s grace.
 */
async function busyboxBotImage(engine: DockerEngine, tag: string, runLabel: string): Promise<string> {
  const context = mkdtempSync(join(tmpdir(), "runyard-bench-busybox-"));
  try {
    copyFileSync("/usr/bin/busybox", join(context, "busybox"));
    const script = 'trap "exit 0" TERM; while true; do sleep 1 & wait $!; done';
    writeFileSync(
      join(context, "Dockerfile"),
      [
        "FROM scratch",
        // First, so the intermediate images carry it too and the cleanup finds them.
        `LABEL ${benchRunLabel}=${runLabel}`,
        "COPY busybox /bin/busybox",
        'RUN ["/bin/busybox", "--install", "-s", "/bin"]',
        "ENV PATH=/bin",
        `CMD ["sh", "-c", ${JSON.stringify(script)}]`,
        "",
      ].join("\n"),
    );
    await engine.build(context, tag, () => {}, { [benchRunLabel]: runLabel });
    return tag;
  } finally {
    rmSync(context, { recursive: true, force: true });
  }
}

/** Removes the containers, then the images, labelled with this bench's run. */
async function removeBenchObjects(engine: DockerEngine, runLabel: string): Promise<void> {
  const filters = { label: [`${benchRunLabel}=${runLabel}`] };
  for (const c of await engine.docker.listContainers({ all: true, filters })) await engine.remove(c.Id);
  const images = await engine.docker.listImages({ all: true, filters });
  // Children before their parents; one gone with its child already is fine.
  images.sort((a, b) => b.Created - a.Created);
  for (const image of images) {
    await engine.docker
      .getImage(image.Id)
      .remove({ force: true })
      .catch(() => undefined);
  }
}

async function api<T>(url: string, method: string, path: string, body?: unknown): Promise<T> {
  const response = await fetch(`${url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${admin}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const answer = (await response.json()) as T;
  if (!response.ok)
    throw new Error(`${method} ${path} answered ${response.status}: ${JSON.stringify(answer)}`);
  return answer;
}

interface StoredEvent {
  type: string;
  ts: string;
  state?: string;
  step?: string;
  error?: { message?: string };
}

/**
 * Follows the run's SSE stream (stored events replayed first, then live ones) until `done`
 * holds for an event; answers every event read, with the client's clock at each.
 */
async function followUntil(
  url: string,
  runId: string,
  done: (event: StoredEvent) => boolean,
): Promise<Array<{ event: StoredEvent; at: number }>> {
  const controller = new AbortController();
  const response = await fetch(`${url}/api/runs/${runId}/events?access_token=${admin}`, {
    signal: controller.signal,
  });
  const seen: Array<{ event: StoredEvent; at: number }> = [];
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      const lines = buffer.split("\n");
      buffer = lines.pop() ?? "";
      for (const line of lines) {
        if (!line.startsWith("data:")) continue;
        const event = JSON.parse(line.slice(5)) as StoredEvent;
        seen.push({ event, at: performance.now() });
        if (done(event)) return seen;
        if (event.type === "run.finished") {
          throw new Error(`run ${runId} finished first: ${event.error?.message ?? JSON.stringify(event)}`);
        }
      }
    }
    throw new Error(`run ${runId}: the event stream ended early`);
  } finally {
    controller.abort();
  }
}

/** The server's time between two events of one start, from their stored `ts`. */
function gap(events: StoredEvent[], from: (e: StoredEvent) => boolean, to: (e: StoredEvent) => boolean) {
  const a = events.find(from);
  const b = events.find(to);
  return a && b ? Date.parse(b.ts) - Date.parse(a.ts) : Number.NaN;
}

/**
 * `runyard bot start` of a local image to `running` against `docker run -d --network none` of
 * the same image. Runyard: a `runyard server` and `runyard runner` process (the built CLI),
 * each start `POST /api/bots {name, image}` then the run's SSE stream until the `bot.state`
 * event `running`; stop and remove are outside the timed part. Also measured, to tell the
 * engine's share from runyard's: dockerode create+start of runyard's own hardened bot spec.
 */
export async function botsStartToRunning(): Promise<BenchResult> {
  const engine = new DockerEngine();
  const why = await missing(engine);
  if (why) return { skipped: `bot start vs docker run: ${why}` };
  const runLabel = `bots-${process.pid}-${Date.now().toString(36)}`;
  const image = await busyboxBotImage(engine, `runyard-bench-bot-${runLabel}:1`, runLabel);
  let server: { child: ChildProcess; url: string; runnerToken: string } | undefined;
  let runner: ChildProcess | undefined;
  const botIds: string[] = [];
  try {
    server = await serverProcess({ RUNYARD_BOT_NETWORK: "none" });
    const url = server.url;
    runner = await runnerProcess(
      url,
      server.runnerToken,
      { RUNYARD_HOME: mkdtempSync(join(tmpdir(), "runyard-bench-runner-")) },
      ["--id", `bench-bots-${runLabel}`],
    );

    const dockerRun = async (): Promise<number> => {
      const start = performance.now();
      const { stdout } = await run("docker", [
        "run",
        "-d",
        "--network",
        "none",
        "--label",
        `${benchRunLabel}=${runLabel}`,
        image,
      ]);
      const took = performance.now() - start;
      await engine.remove(stdout.trim());
      return took;
    };

    let spec = 0;
    const hardened = async (): Promise<number> => {
      spec += 1;
      const options = botContainer({
        image,
        name: `runyard-bench-spec-${runLabel}-${spec}`,
        env: {},
        limits: { memoryBytes: 256 * 1024 * 1024, cpus: 0.5, pids: 100 },
        ownership: {
          botId: `bench-${spec}`,
          tenantId: null,
          owner: "bench",
          expiresAt: "2099-01-01T00:00:00Z",
        },
        network: "none",
        labels: { [benchRunLabel]: runLabel },
      });
      const start = performance.now();
      const id = await engine.run(options);
      const took = performance.now() - start;
      await engine.remove(id);
      return took;
    };

    // The same create+start with Docker's defaults, as `docker run -d --network none` asks.
    const plain = async (): Promise<number> => {
      const start = performance.now();
      const id = await engine.run({
        Image: image,
        Labels: { [benchRunLabel]: runLabel },
        HostConfig: { NetworkMode: "none" },
      });
      const took = performance.now() - start;
      await engine.remove(id);
      return took;
    };
    // What BotSupervisor.launch asks before each create: the removal of a name no container holds.
    const removeMissing = () => timed(() => engine.remove(`runyard-bench-none-${runLabel}`));

    let count = 0;
    const breakdowns: StoredEvent[][] = [];
    const postMs: number[] = [];
    const runyard = async (): Promise<number> => {
      count += 1;
      const name = `bench-bot-${count}`;
      const start = performance.now();
      const answer = await api<{ bot: { id: string }; run_id: string }>(url, "POST", "/api/bots", {
        name,
        image,
      });
      postMs.push(performance.now() - start);
      botIds.push(answer.bot.id);
      const seen = await followUntil(
        url,
        answer.run_id,
        (e) => e.type === "bot.state" && e.state === "running",
      );
      const took = (seen.at(-1)?.at ?? start) - start;
      breakdowns.push(seen.map((s) => s.event));
      await api(url, "POST", `/api/bots/${name}/stop`);
      // The runner's slot is free once the run has ended: the next start must not wait for it.
      await followUntil(url, answer.run_id, (e) => e.type === "run.finished");
      await api(url, "DELETE", `/api/bots/${name}`);
      return took;
    };

    // One warm-up each: the CLI's page cache, the engine's image metadata, the server's routes.
    await dockerRun();
    await hardened();
    await plain();
    await runyard();
    breakdowns.length = 0;
    postMs.length = 0;
    const base: number[] = [];
    const floor: number[] = [];
    const defaults: number[] = [];
    const removals: number[] = [];
    const ours: number[] = [];
    for (let i = 0; i < 10; i++) {
      base.push(await dockerRun());
      floor.push(await hardened());
      defaults.push(await plain());
      removals.push(await removeMissing());
      ours.push(await runyard());
    }

    const isState = (state: string) => (e: StoredEvent) => e.type === "bot.state" && e.state === state;
    const pullStarted = (e: StoredEvent) => e.type === "step.started" && e.step === "pull";
    const pullFinished = (e: StoredEvent) => e.type === "step.finished" && e.step === "pull";
    const first = (e: StoredEvent) => e !== undefined;
    const stage = (from: (e: StoredEvent) => boolean, to: (e: StoredEvent) => boolean) =>
      median(breakdowns.map((events) => gap(events, from, to))).toFixed(0);
    const where = [
      `POST answered ${median(postMs).toFixed(0)} ms`,
      `first stored event -> pulling ${stage(first, isState("pulling"))} ms`,
      `pull step (image inspect) ${stage(pullStarted, pullFinished)} ms`,
      `pull finished -> running ${stage(pullFinished, isState("running"))} ms`,
      `first stored event -> running ${stage(first, isState("running"))} ms`,
    ].join(", ");
    const row: BenchRow = {
      name: "bot start (image, POST /api/bots) to running vs docker run -d",
      measured: ms(ours),
      baseline: `${ms(base)} docker run -d`,
      ratio: median(ours) / median(base),
      target: "<= 1.2",
      note: `medians (min-max) of 10 alternating starts after one warm-up each; a busybox image built here; runyard server + runner processes (dist/), RUNYARD_BOT_NETWORK=none; runyard: POST /api/bots {name,image} -> bot.state running on the run's SSE stream (pushed as stored, so no polling interval adds to it); baseline: \`docker run -d --network none IMAGE\` child process until it prints the id. \`runyard bot start --image --detach\` is not in main yet, so the API is timed. For the owner: dockerode create+start of runyard's hardened bot spec alone ${ms(floor)}, of Docker's defaults ${ms(defaults)}; the remove of a missing name before each create ${ms(removals)}; server event times (medians): ${where}`,
    };
    return row;
  } finally {
    runner?.kill();
    server?.child.kill();
    await Promise.all(runner ? [new Promise((resolve) => runner?.once("exit", resolve))] : []);
    for (const id of botIds) {
      const left = await engine.docker.listContainers({
        all: true,
        filters: { label: [`runyard.bot=${id}`] },
      });
      for (const c of left) await engine.remove(c.Id);
    }
    await removeBenchObjects(engine, runLabel);
  }
}

/**
 * A simple-mode bot's build (src/bots/simple-build.ts context, built by DockerEngine.build as
 * the runner builds it) against `docker build` of the same context. DockerEngine.build takes
 * no cache option, so neither side is given one: each build has a context of its own whose
 * bot file differs (a counter in a comment), so `COPY app/` and what follows miss the cache
 * on both sides while `FROM` and `WORKDIR` hit it, as a redeploy of changed code does.
 */
export async function botsSimpleBuild(): Promise<BenchResult> {
  const engine = new DockerEngine();
  const why = await missing(engine);
  if (why) return { skipped: `simple-mode build vs docker build: ${why}` };
  const runLabel = `bots-build-${process.pid}-${Date.now().toString(36)}`;
  const root = mkdtempSync(join(tmpdir(), "runyard-bench-build-"));
  try {
    // No requirements, so the build runs no command of the base: the bench's busybox image serves.
    const base = await busyboxBotImage(engine, `runyard-bench-base-${runLabel}:1`, runLabel);
    let count = 0;
    const context = (): string => {
      count += 1;
      const dir = join(root, String(count));
      mkdirSync(dir);
      const code = [
        `# build ${count}`,
        "import time",
        'print("echo bot up", flush=True)',
        "while True:",
        "    time.sleep(1)",
        "",
      ].join("\n");
      simpleBuildContext(
        {
          files: { "bot.py": code, "faq.txt": "Q: what is this?\nA: the avtomatika-bot CLI's echo bot.\n" },
          requirements: [],
          baseImages: { python: base, node: base },
        },
        dir,
      );
      return dir;
    };
    const ours = async (): Promise<number> => {
      const dir = context();
      const start = performance.now();
      await engine.build(dir, `runyard-bench-built-${runLabel}-${count}:1`, () => {}, {
        [benchRunLabel]: runLabel,
      });
      return performance.now() - start;
    };
    const theirs = async (): Promise<number> => {
      const dir = context();
      const start = performance.now();
      await run("docker", [
        "build",
        "-q",
        "--label",
        `${benchRunLabel}=${runLabel}`,
        "-t",
        `runyard-bench-built-${runLabel}-${count}:1`,
        dir,
      ]);
      return performance.now() - start;
    };
    await ours();
    await theirs();
    const mine: number[] = [];
    const cli: number[] = [];
    for (let i = 0; i < 7; i++) {
      mine.push(await ours());
      cli.push(await theirs());
    }
    return {
      name: "simple-mode build vs docker build",
      measured: ms(mine),
      baseline: `${ms(cli)} docker build`,
      ratio: median(mine) / median(cli),
      target: "<= 1.2",
      note: "medians (min-max) of 7 alternating builds after one warm-up each; a Python bot (bot.py and a text file, no requirements) through simpleBuildContext on a busybox base built here; runyard: DockerEngine.build (the runner's path: tar of the context, dockerode buildImage, rm/forcerm); baseline: `docker build -q` child process. Both go to the engine's legacy builder (no buildx here). Neither is given --no-cache (DockerEngine.build has no such option): every build's bot file differs, so FROM and WORKDIR are cached and COPY, USER, CMD are built, alike on both sides",
    };
  } finally {
    rmSync(root, { recursive: true, force: true });
    await removeBenchObjects(engine, runLabel);
  }
}
