import { randomBytes } from "node:crypto";
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DockerEngine } from "../src/exec/docker/docker-engine.js";
import { tempDir } from "./helpers/cli.js";
import { busyboxImage, removeTestObjects, requireDocker, testLabel, testRunLabel } from "./helpers/docker.js";
import { runEnded, runOutput, submitWorkflow } from "./helpers/member-runs.js";
import { type SandboxedUp, startSandboxedUp } from "./helpers/sandboxed-up.js";
import { readEvents, waitForRun } from "./helpers/server.js";
import { doneScript, gateScript, swapUntilDone } from "./helpers/swap-race.js";

/**
 * A member attacks how a Docker step's cwd is checked (held-cwd.ts, native/cwd-check.c): Docker
 * mounts the cwd by path, so the runner identifies the folder from one descriptor and the
 * container's command starts only in a folder of that identity. The member's other steps of the
 * run may swap the folder's path for a link to a folder of the server's home as containers start.
 */
const haveDocker = await requireDocker();
/** Labels this file's images, so its cleanup removes them and nothing of another file's. */
const run = `docker-cwd-attacks-${randomBytes(4).toString("hex")}`;

let up: SandboxedUp & { listed: string; bare: string };
/** The member's images of the last two tests, built while `up` starts. */
let images: { checkerLink: string; healthcheck: string };

beforeAll(async () => {
  // One `up` for the file, in a folder of its own (its runner's working folder), listing two more
  // roots: `listed`, where each test makes a folder of its own, and `bare`, two deep as the
  // checker's link test needs and kept empty but for what that test looks for.
  const listed = tempDir("runyard-listed-");
  const bare = tempDir("runyard-bare-");
  const started = startSandboxedUp({ RUNYARD_STEP_CWD_ROOTS: `${listed}:${bare}` });
  const built: Promise<[string, string]> = haveDocker
    ? Promise.all([
        // Links into the step's cwd where the engine mounts the checker (see that test).
        memberImage(`runyard-test-cwd-link-${run}:1`, [
          `RUN ["/bin/busybox", "sh", "-c", "ln -s ${bare}/made/by/engine /.runyard && ln -s ${bare}/made-too/cwd-check /.runyard-cwd-check"]`,
        ]),
        memberImage(`runyard-test-healthcheck-${run}:1`, [
          'HEALTHCHECK --interval=100ms --start-period=1ms --timeout=1s CMD ["/bin/busybox", "touch", "health-ran"]',
        ]),
      ])
    : Promise.resolve(["", ""] as [string, string]);
  const [sandboxed, [checkerLink, healthcheck]] = await Promise.all([started, built]);
  up = { ...sandboxed, listed, bare };
  images = { checkerLink, healthcheck };
}, 120_000);

afterAll(async () => {
  await up?.proc.kill();
  if (haveDocker) await removeTestObjects(run);
});

/** A folder of the server's home, which no step sees, holding a secret. */
function victimFolder(name: string): string {
  const victim = join(up.home, name);
  mkdirSync(victim);
  writeFileSync(join(victim, "secret"), "server-secret\n");
  return victim;
}

/**
 * A run whose `swapper` step (a process on the runner) runs `prepare` in `parent`, then exchanges
 * `x` with `x.lnk` while `readers` steps whose cwd is `parent/x` start (on `readerHost`), until
 * the `done` step (after every reader) says they are over.
 */
function raceWorkflow(options: {
  /** The Docker host's image; none when the readers run as processes. */
  image?: string | undefined;
  parent: string;
  victim: string;
  prepare: string[];
  readers: number;
  /** Where the readers run: `box` (the Docker host) by default. */
  readerHost?: "box" | "local";
  /** What each reader runs: it reads `secret` and makes a file by default. */
  readerScript?: string;
}): string {
  const { image, parent, victim, prepare, readers } = options;
  const readerNames = Array.from({ length: readers }, (_, index) => `r${index}`);
  return [
    "version: v0.1",
    "name: docker-cwd-attack",
    "inventory:",
    "  hosts:",
    "    local: {}",
    ...(image ? [`    box: {executor: docker, image: ${image}}`] : []),
    "steps:",
    "  - name: swapper",
    "    targets: [local]",
    "    action: shell.run",
    "    args:",
    `      cwd: ${parent}`,
    "      env:",
    `        VICTIM: "${victim}"`,
    "      script: |",
    "        set -e",
    ...prepare.map((line) => `        ${line}`),
    '        ln -s "$VICTIM" x.lnk',
    `        ${swapUntilDone("x", "x.lnk")}`,
    "  - name: gate",
    "    targets: [local]",
    "    action: shell.run",
    "    args:",
    `      cwd: ${parent}`,
    `      script: ${gateScript}`,
    ...readerNames.flatMap((name) => [
      `  - name: ${name}`,
      `    targets: [${options.readerHost ?? "box"}]`,
      "    depends: [gate]",
      "    continue_on_error: true",
      "    action: shell.run",
      "    args:",
      ...(options.readerHost === "local" ? [] : ["      shell: sh"]),
      `      cwd: ${join(parent, "x")}`,
      `      script: ${options.readerScript ?? `cat secret 2>/dev/null && echo LEAKED; touch pwned-${name} 2>/dev/null; true`}`,
    ]),
    "  - name: done",
    "    targets: [local]",
    `    depends: [${readerNames.join(", ")}]`,
    "    action: shell.run",
    "    args:",
    `      cwd: ${parent}`,
    `      script: ${doneScript}`,
    "",
  ].join("\n");
}

/**
 * Runs a race workflow as the member and checks it held: the swapper really swapped, no reader
 * read the victim's secret or made a file there. The run's events as text, for more checks.
 */
async function raceHeld(yaml: string, victim: string): Promise<string> {
  const runId = await submitWorkflow(up.url, yaml, up.userToken);
  const view = await waitForRun(up.url, runId, runEnded, 150_000);
  const output = await runOutput(up.url, runId);
  const text = JSON.stringify(await readEvents(up.url, runId));
  // The attack was real: the swapper exchanged them many times while the readers started.
  expect(Number(/swaps=(\d+)/.exec(output)?.[1] ?? 0), JSON.stringify(view)).toBeGreaterThan(1000);
  expect(text).not.toContain("LEAKED");
  expect(text).not.toContain("server-secret");
  expect(readdirSync(victim)).toEqual(["secret"]);
  return text;
}

/**
 * `x` leads, through two links, to a folder of the member's nested deeper than the longest path
 * the kernel names (4096 bytes): the runner can open it but not read its real path back, and its
 * links cannot be resolved into one path either, so it cannot be judged or identified. `x` is
 * exchanged with a link to the victim as the readers start: a folder the runner mounted by path
 * unchecked would be the server's.
 */
async function deepLinkRace(readerHost: "box" | "local", readers: number): Promise<void> {
  const victim = victimFolder(`victim-deep-${readerHost}`);
  // Each reader finds `x` as the deep link or as the victim's link, as the swap falls; on a busy
  // machine every reader of a run once found the victim's (each refused, the victim untouched),
  // which proves nothing of the deep link: such a run is tried again, at most three times. Every
  // run must hold; one of them must have met the deep link.
  let text = "";
  for (let attempt = 0; attempt < 3; attempt++) {
    text = await deepLinkRaceOnce(readerHost, readers, victim, attempt);
    if (text.includes("leads to a folder whose real path is longer than the system can name")) break;
  }
  // A reader that found `x` leading deep was refused, saying why.
  expect(text).toContain("leads to a folder whose real path is longer than the system can name");
}

async function deepLinkRaceOnce(
  readerHost: "box" | "local",
  readers: number,
  victim: string,
  attempt: number,
): Promise<string> {
  const parent = join(up.listed, `deep-race-${readerHost}-${attempt}`);
  mkdirSync(parent);
  const prepare = [
    "name=$(printf '%0250d' 0)",
    'upper=$(printf "$name/%.0s" $(seq 15))',
    'lower=$(printf "$name/%.0s" $(seq 9))',
    'mkdir -p "$upper"',
    '(cd "$upper" && mkdir -p "$lower" && ln -s "$lower" y)',
    'ln -s "$upper"y x',
  ];
  const image = readerHost === "box" ? await busyboxImage() : undefined;
  const yaml = raceWorkflow({ image, parent, victim, prepare, readers, readerHost });
  return raceHeld(yaml, victim);
}

describe.skipIf(!haveDocker)("a member's Docker step whose cwd is swapped as its container starts", () => {
  it("cannot have its container mount a hidden folder: the checker runs nothing in another folder", async () => {
    const victim = victimFolder("victim-docker-cwd");
    const parent = join(up.listed, "docker-cwd-race");
    mkdirSync(join(parent, "x"), { recursive: true });
    const image = await busyboxImage();
    const yaml = raceWorkflow({ image, parent, victim, prepare: [], readers: 8 });
    await raceHeld(yaml, victim);
  }, 180_000);

  it("cannot mount a hidden folder through a cwd whose real path is too long for the runner to name", async () => {
    await deepLinkRace("box", 12);
  }, 180_000);
});

describe("a member's process step whose cwd is swapped as its sandbox starts", () => {
  // The same hold serves bubblewrap, which binds the cwd by path too.
  it("cannot bind a hidden folder through a cwd whose real path is too long for the runner to name", async () => {
    await deepLinkRace("local", 30);
  }, 180_000);
});

describe.skipIf(!haveDocker)("a member's Docker step whose cwd is swapped for another user's folder", () => {
  // Under a root runner a container runs as its cwd's owner: the owner of the folder the runner
  // held, never of one a link named a moment before or after.
  it.skipIf(process.getuid?.() !== 0)(
    "never runs as that folder's owner",
    async () => {
      const other = tempDir("runyard-other-user-");
      chownSync(other, 1234, 1234);
      // A reader the swap refused (its folder was the link, or was swapped after the check: about
      // 5 of 6 are) proves nothing of whom it runs as; a run in which every reader was refused (the
      // swap now lasts exactly as long as the readers, so none starts after it) is tried again, at
      // most three times.
      let output = "";
      let refusals: string[] = [];
      for (let attempt = 0; attempt < 3; attempt++) {
        const parent = join(up.listed, `owner-race-${attempt}`);
        mkdirSync(parent);
        const yaml = raceWorkflow({
          image: await busyboxImage(),
          parent,
          victim: other,
          prepare: ["mkdir x"],
          readers: 16,
          readerScript: 'echo "ran-as-$(id -u)-"',
        });
        const runId = await submitWorkflow(up.url, yaml, up.userToken);
        const view = await waitForRun(up.url, runId, runEnded, 150_000);
        output = await runOutput(up.url, runId);
        refusals = (await readEvents(up.url, runId)).flatMap((event) =>
          event.type === "step.finished" && event.error ? [event.error.message] : [],
        );
        expect(Number(/swaps=(\d+)/.exec(output)?.[1] ?? 0), JSON.stringify(view)).toBeGreaterThan(1000);
        expect(output).not.toContain("ran-as-1234-");
        if (/ran-as-\d+-/.test(output)) break;
      }
      // Some readers ran, as the owner of the member's own folder.
      expect(output, JSON.stringify(refusals)).toMatch(/ran-as-\d+-/);
      expect(output).not.toContain("ran-as-1234-");
    },
    180_000,
  );
});

/** An image `FROM` the busybox test image whose Dockerfile goes on with `lines`. */
async function memberImage(tag: string, lines: string[]): Promise<string> {
  const context = mkdtempSync(join(tmpdir(), "runyard-member-image-"));
  try {
    writeFileSync(join(context, "Dockerfile"), [`FROM ${await busyboxImage()}`, ...lines, ""].join("\n"));
    await new DockerEngine().build(context, tag, () => {}, { [testLabel]: "1", [testRunLabel]: run });
    return tag;
  } finally {
    rmSync(context, { recursive: true, force: true });
  }
}

describe.skipIf(!haveDocker)("a member's Docker step in an image of its choosing", () => {
  it("cannot have the runner's checker mounted through the image's link into the step's cwd, making folders there as root", async () => {
    // The image's /.runyard and /.runyard-cwd-check are links into the step's cwd (`bare`). Were the
    // checker's mount made after the cwd's (the engine mounts the shallowest targets first), the
    // engine would follow the link into the host's folder and make what the mount needs there,
    // as root: in a folder swapped in by then (the server's home), too. A cwd two deep (the
    // bare listed root itself) is as deep as /.runyard/cwd-check.
    const cwd = up.bare;
    chmodSync(cwd, 0o755); // the container's user (nobody: the folder is root's) works in it
    const image = images.checkerLink;
    const steps = ["a", "b", "c", "d"];
    const yaml = [
      "version: v0.1",
      "name: checker-link",
      "inventory:",
      "  hosts:",
      `    box: {executor: docker, image: ${image}}`,
      "steps:",
      // At once (no step waits on another): each is an attempt of its own.
      ...steps.flatMap((name) => [
        `  - name: ${name}`,
        "    targets: [box]",
        "    depends: []",
        "    continue_on_error: true",
        "    action: shell.run",
        "    args:",
        "      shell: sh",
        `      cwd: ${cwd}`,
        `      script: echo "ran-${name}"`,
      ]),
      "",
    ].join("\n");
    const runId = await submitWorkflow(up.url, yaml, up.userToken);
    await waitForRun(up.url, runId, runEnded, 120_000);
    const output = await runOutput(up.url, runId);
    const events = await readEvents(up.url, runId);
    // Every step was tried, and nothing of the engine's was made in the host's folder.
    expect(events.filter((event) => event.type === "step.finished")).toHaveLength(steps.length);
    expect(readdirSync(cwd), output).toEqual([]);
  }, 150_000);

  it("cannot have the image's HEALTHCHECK run a second command in the step's folder", async () => {
    // A HEALTHCHECK starts in the container's working folder (the step's cwd) beside the step's
    // command and without the checker; a step's container runs none.
    const cwd = join(up.listed, "health");
    mkdirSync(cwd);
    chmodSync(cwd, 0o777);
    const image = images.healthcheck;
    const yaml = [
      "version: v0.1",
      "name: healthcheck",
      "inventory:",
      "  hosts:",
      `    box: {executor: docker, image: ${image}}`,
      "steps:",
      "  - name: wait",
      "    targets: [box]",
      "    action: shell.run",
      "    args:",
      "      shell: sh",
      `      cwd: ${cwd}`,
      "      script: sleep 2; echo waited",
      "",
    ].join("\n");
    const runId = await submitWorkflow(up.url, yaml, up.userToken);
    const view = await waitForRun(up.url, runId, runEnded, 120_000);
    const output = await runOutput(up.url, runId);
    expect(view.status, output).toBe("success");
    expect(output).toContain("waited");
    expect(readdirSync(cwd)).toEqual([]);
  }, 150_000);
});
