/**
 * What a member's step container (a workflow host with `executor: docker`) may be: one rule,
 * checked by the server at submit and by the runner before it creates a container (a run from an
 * older server reaches the runner unchecked). A platform admin's runs are not held to it.
 */

/** The label a bot's image carries, with the bot's id: runyard puts it on every image it builds for a bot. */
export const botImageLabel = "runyard.bot";
/** How the images runyard builds for bots are named: `runyard-bot-<bot id>:latest`. */
export const botImagePrefix = "runyard-bot-";

/**
 * The networks a member's container may join: `none` (the default) or `host`. `host` gives
 * nothing more than a step run as a process on the same runner has (the host's network); a
 * Docker network or `container:NAME` would put the step beside other containers, another
 * tenant's bot among them, reaching their loopback services.
 */
export const memberNetworks: readonly string[] = ["none", "host"];

export interface ContainerRefusal {
  /** The host's key that is refused. */
  key: "image" | "network";
  message: string;
  hint: string;
}

/**
 * Why a member's run may not use this container, by its settings alone: a network other than
 * `none` or `host`, an image id (`sha256:...`, or a bare hex id or id prefix, which Docker takes
 * for an id when no image has that name), or a bot's image (`runyard-bot-...`). Undefined: it may.
 */
export function memberContainerRefusal(
  host: string,
  container: { image: string; network: string },
): ContainerRefusal | undefined {
  const { image, network } = container;
  if (!memberNetworks.includes(network)) {
    return {
      key: "network",
      message: `host "${host}" asks for the network ${JSON.stringify(network)}; a member's step containers may have network none or host`,
      hint: "Leave network out (none) or write network: host (the runner's own network, which a step run as a process has too); a Docker network or container:NAME is for a platform admin's runs.",
    };
  }
  if (isImageId(image)) {
    return {
      key: "image",
      message: `host "${host}" names the image by its id (${JSON.stringify(image)}); a member's step containers take an image by name`,
      hint: "Write the image's name and tag, such as busybox:1.36 (`docker images` lists them on the runner); a name of hex digits alone is read as an id, so give it a tag.",
    };
  }
  if (isBotImageName(image)) {
    return {
      key: "image",
      message: `host "${host}" names ${JSON.stringify(image)}, an image runyard built for a bot; a member's step containers may not run in a bot's image`,
      hint: "Name an image of your own on the runner (docker build -t NAME:TAG there), not a runyard-bot- image.",
    };
  }
  return undefined;
}

/**
 * Why a member's run may not use the image the runner's engine holds under that name, by its
 * labels: an image runyard built for a bot (its `runyard.bot` label), whatever name it goes by.
 */
export function memberImageLabelsRefusal(
  host: string,
  image: string,
  labels: Record<string, string>,
): ContainerRefusal | undefined {
  const bot = labels[botImageLabel];
  if (bot === undefined) return undefined;
  return {
    key: "image",
    message: `image ${JSON.stringify(image)} of host "${host}" was built by runyard for a bot; a member's step containers may not run in a bot's image`,
    hint: "Name an image of your own on the runner (docker build -t NAME:TAG there); a bot's image holds what its owner put in it.",
  };
}

/** `sha256:...`, or a bare hex string (no tag), which Docker resolves as an image id prefix. */
export function isImageId(image: string): boolean {
  return /^sha256:/i.test(image) || /^[0-9a-f]+$/i.test(image);
}

/** A name of a runyard-built bot image, as Docker reads it (`docker.io/library/` may be written before it). */
export function isBotImageName(image: string): boolean {
  let name = image.toLowerCase();
  for (const prefix of ["docker.io/", "index.docker.io/", "library/"]) {
    if (name.startsWith(prefix)) name = name.slice(prefix.length);
  }
  return name.startsWith(botImagePrefix);
}
