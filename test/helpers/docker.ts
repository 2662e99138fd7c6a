import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DockerEngine } from "../../src/exec/docker/docker-engine.js";

/** The label of everything a test creates; afterAll hooks remove by it. */
export const testLabel = "runyard.test";

/** Whether a Docker engine answers on the default socket. */
export async function dockerAvailable(): Promise<boolean> {
  return new DockerEngine().ping();
}

/**
 * For tests that need the engine: false when none answers, so a test may skip locally; under
 * CI=true that throws instead, because CI must test against the real engine (.ci/run starts one).
 */
export async function requireDocker(): Promise<boolean> {
  if (await dockerAvailable()) return true;
  const message = "no Docker engine answers on /var/run/docker.sock";
  if (process.env.CI === "true") throw new Error(`${message}; CI must run the Docker tests`);
  process.stderr.write(`${message}; skipping the Docker tests\n`);
  return false;
}

const built = new Map<string, Promise<string>>();

/**
 * A busybox image built from the host's busybox-static (nothing can be pulled): `FROM scratch`,
 * busybox and its applet links in /bin, labelled `runyard.test=1`. Built once per tag.
 */
export function busyboxImage(tag = "runyard-test-busybox:1"): Promise<string> {
  let image = built.get(tag);
  if (!image) {
    image = buildBusybox(tag);
    built.set(tag, image);
  }
  return image;
}

async function buildBusybox(tag: string): Promise<string> {
  const engine = new DockerEngine();
  try {
    await engine.docker.getImage(tag).inspect();
    return tag;
  } catch {
    // Not built yet.
  }
  const context = mkdtempSync(join(tmpdir(), "runyard-busybox-"));
  try {
    copyFileSync("/usr/bin/busybox", join(context, "busybox"));
    writeFileSync(
      join(context, "Dockerfile"),
      'FROM scratch\nLABEL runyard.test=1\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\nENV PATH=/bin\n',
    );
    await engine.build(context, tag, () => {}, { [testLabel]: "1" });
    return tag;
  } finally {
    rmSync(context, { recursive: true, force: true });
  }
}

/** The label a test file puts on what it makes, so its cleanup touches nothing of another file's. */
export const testRunLabel = "runyard.test.run";

/**
 * Removes the containers, then the images, that one test file made (labelled
 * `runyard.test.run=<run>`). Test files run at once against one engine: a cleanup of everything
 * labelled `runyard.test` would kill another file's containers mid-test. The shared busybox image
 * stays, reused by the next run.
 */
export async function removeTestObjects(run: string): Promise<void> {
  const engine = new DockerEngine();
  const filters = { label: [`${testRunLabel}=${run}`] };
  const containers = await engine.docker.listContainers({ all: true, filters });
  await Promise.all(containers.map((c) => engine.remove(c.Id)));
  // Intermediate layers carry the label too (a Dockerfile's LABEL comes first); newest first, so
  // children go before their parents. One already gone with its child is not an error.
  const images = await engine.docker.listImages({ all: true, filters });
  images.sort((a, b) => b.Created - a.Created);
  for (const image of images) {
    await engine.docker
      .getImage(image.Id)
      .remove({ force: true })
      .catch((error: { statusCode?: number }) => {
        if (error.statusCode !== 404 && error.statusCode !== 409) throw error;
      });
  }
}

/**
 * A test image `FROM` the busybox test image whose command is `script` (a bot of seed 001's
 * image mode), labelled with the test file's `run` so its cleanup removes it.
 */
export async function commandImage(tag: string, script: string, run: string): Promise<string> {
  const context = mkdtempSync(join(tmpdir(), "runyard-command-image-"));
  try {
    writeFileSync(
      join(context, "Dockerfile"),
      `FROM ${await busyboxImage()}\nCMD ["sh", "-c", ${JSON.stringify(script)}]\n`,
    );
    await new DockerEngine().build(context, tag, () => {}, { [testLabel]: "1", [testRunLabel]: run });
    return tag;
  } finally {
    rmSync(context, { recursive: true, force: true });
  }
}

/** Removes the containers of these bots (by their label) and the images built for them. */
export async function removeBotObjects(botIds: Iterable<string>): Promise<void> {
  const engine = new DockerEngine();
  for (const id of botIds) {
    const containers = await engine.docker.listContainers({
      all: true,
      filters: { label: [`runyard.bot=${id}`] },
    });
    for (const container of containers) await engine.remove(container.Id);
    await engine.docker
      .getImage(`runyard-bot-${id}:latest`)
      .remove({ force: true })
      .catch(() => undefined);
  }
}
