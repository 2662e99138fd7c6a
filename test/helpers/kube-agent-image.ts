import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { inject } from "vitest";
import { DockerEngine } from "../../src/exec/docker/docker-engine.js";
import { agentBaseImage } from "./base-images.js";
import { testLabel, testRunLabel } from "./docker.js";

/**
 * The package folder of an installed agent CLI, from the path of its `node_modules/.bin` entry:
 * `<agents home>/<agent>` (or `<name>@<version>` of agentCli's own installs).
 */
export function cliPackageRoot(cli: string): string {
  return dirname(dirname(dirname(cli)));
}

/**
 * A turn's image for `k8s_image`: the agent image of the other tests (node, git, bash, curl from
 * the host's files) with each CLI's package folder copied in at the path the runner has it, as
 * `k8s_image` is built from the runner's image in a cluster. Built one layer per CLI, each image
 * tagged by a hash of the run, the base and the whole paths of the CLIs in it so far: a file that
 * names fewer CLIs (the same first ones) reuses the first layers of another file's. The images
 * carry the run's label, and the run's teardown (test/global-setup.ts) removes them: they hold
 * the CLIs, over a GB, and a run left six behind on the engine, which outlives it. With `certificates`, the host's
 * CA bundle on top, at Debian's path, as docker/agent.Dockerfile's ca-certificates has it (Copilot
 * CLI's native HTTP client will not start without trust roots, even for an http:// endpoint).
 */
export async function kubernetesAgentImage(
  clis: readonly string[],
  options: { certificates?: boolean } = {},
): Promise<string> {
  let image = await agentBaseImage();
  const hash = createHash("sha256").update(`${inject("testRunId")}\n${image}`);
  for (const packageRoot of clis.map(cliPackageRoot)) {
    hash.update(`\n${packageRoot}`);
    image = await layer(image, hash, packageRoot, `COPY . ${packageRoot}/`);
  }
  if (options.certificates) {
    const context = mkdtempSync(join(tmpdir(), "runyard-k8s-certs-"));
    try {
      copyFileSync(bundle, join(context, "ca-certificates.crt"));
      hash.update("\nca-certificates");
      image = await layer(image, hash, context, `COPY ca-certificates.crt ${bundle}`);
    } finally {
      rmSync(context, { recursive: true, force: true });
    }
  }
  return image;
}

const bundle = "/etc/ssl/certs/ca-certificates.crt";

/** `FROM image` plus `instruction` on `context`, tagged by `hash` so far; built only once. */
async function layer(
  image: string,
  hash: ReturnType<typeof createHash>,
  context: string,
  instruction: string,
): Promise<string> {
  const tag = `runyard-test-k8s-agent:${hash.copy().digest("hex").slice(0, 16)}`;
  const present = await new DockerEngine().docker
    .getImage(tag)
    .inspect()
    .then(() => true)
    .catch(() => false);
  if (present) return tag;
  const labels = ["--label", `${testLabel}=1`, "--label", `${testRunLabel}=${inject("testRunId")}`];
  const built = spawnSync("docker", ["build", "-q", "-t", tag, ...labels, "-f", "-", context], {
    input: `FROM ${image}\n${instruction}\n`,
    encoding: "utf8",
    timeout: 600_000,
  });
  if (built.status !== 0) throw new Error(`cannot build ${tag}: ${built.stderr || built.error}`);
  return tag;
}
