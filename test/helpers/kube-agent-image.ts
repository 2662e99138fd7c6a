import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { dirname } from "node:path";
import { DockerEngine } from "../../src/exec/docker-engine.js";
import { agentBaseImage } from "./base-images.js";

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
 * tagged by a hash of the base and the whole paths of the CLIs in it so far: two homes (this
 * machine's and CI's) hold the CLIs at different paths, and never share an image; a file that
 * names fewer CLIs (the same first ones) reuses the first layers.
 */
export async function kubernetesAgentImage(clis: readonly string[]): Promise<string> {
  let image = await agentBaseImage();
  const engine = new DockerEngine();
  const hash = createHash("sha256").update(image);
  for (const packageRoot of clis.map(cliPackageRoot)) {
    hash.update(`\n${packageRoot}`);
    const tag = `runyard-test-k8s-agent:${hash.copy().digest("hex").slice(0, 16)}`;
    const present = await engine.docker
      .getImage(tag)
      .inspect()
      .then(() => true)
      .catch(() => false);
    if (!present) {
      const built = spawnSync("docker", ["build", "-q", "-t", tag, "-f", "-", packageRoot], {
        input: `FROM ${image}\nCOPY . ${packageRoot}/\n`,
        encoding: "utf8",
        timeout: 600_000,
      });
      if (built.status !== 0) throw new Error(`cannot build ${tag}: ${built.stderr || built.error}`);
    }
    image = tag;
  }
  return image;
}
