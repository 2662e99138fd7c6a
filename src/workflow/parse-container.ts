/** A host's `executor:` and its container settings (`executor: docker`). */
import { isScalar } from "yaml";
import { minimumContainerMemory, parseMemorySize } from "../core/memory-size.js";
import { quoted } from "../core/quoted-input.js";
import type { StepContainer } from "../core/step-attempt.js";
import { suggestWithList } from "./suggest.js";
import { describe, FieldReader, type Fields, type YamlReader } from "./yaml-reader.js";

export const executors = ["process", "docker"] as const;

/** The keys that only mean something with `executor: docker`. */
export const containerKeys = ["image", "memory", "cpus", "pids", "network"] as const;

export const executorKeys = ["executor", ...containerKeys];

/**
 * The avtomatika-bot limits, the same a bot gets: 256 MiB, half a CPU, 100 processes. The network
 * is `none` unless the host asks: a step reaching out is something a workflow author opts into.
 */
const defaults = { memoryBytes: 256 * 1024 * 1024, cpus: 0.5, pids: 100, network: "none" };

/** The container a host's steps run in: undefined for the process executor (the default), null when something was reported. */
export function readContainer(
  reader: YamlReader,
  fields: Fields,
  name: string,
): StepContainer | undefined | null {
  const read = new FieldReader(reader, fields, `host "${name}"`);
  const executorField = fields.get("executor");
  let executor: string | undefined = "process";
  if (executorField) {
    executor = read.string("executor");
    if (executor === undefined) return null;
    if (!(executors as readonly string[]).includes(executor)) {
      reader.report(
        executorField.value,
        `unknown executor ${quoted(executor)} in host "${name}"`,
        suggestWithList(executor, executors, "executors"),
      );
      return null;
    }
  }
  const settings = containerKeys.filter((key) => fields.has(key));
  if (executor === "process") {
    if (settings.length === 0) return undefined;
    reader.report(
      fields.get(settings[0]!)!.key,
      `host "${name}" sets "${settings[0]}" but runs its steps as processes`,
      "add `executor: docker` to run its steps in a container, or remove the container settings",
    );
    return null;
  }
  const imageField = fields.get("image");
  if (!imageField) {
    reader.report(
      executorField!.key,
      `host "${name}" has executor docker but no image`,
      "add `image: NAME:TAG`, an image present on the runner (docker pull or docker build it there)",
    );
    return null;
  }
  const image = read.string("image");
  if (image !== undefined && image.trim() === "") {
    reader.report(imageField.value, `image of host "${name}" is empty`, "write it like `busybox:1.36`");
    return null;
  }
  const memoryField = fields.get("memory");
  const memoryBytes = memoryField ? readMemory(reader, memoryField.value, name) : defaults.memoryBytes;
  const cpus = fields.has("cpus") ? read.number("cpus", "positive number") : defaults.cpus;
  const pids = fields.has("pids") ? read.number("pids", "positive integer") : defaults.pids;
  const network = fields.has("network") ? read.string("network") : defaults.network;
  if (network !== undefined && network.trim() === "") {
    reader.report(
      read.value("network"),
      `network of host "${name}" is empty`,
      "write none, host or a Docker network's name",
    );
    return null;
  }
  if (
    image === undefined ||
    memoryBytes === undefined ||
    cpus === undefined ||
    pids === undefined ||
    network === undefined
  ) {
    return null;
  }
  return { image, memory_bytes: memoryBytes, cpus, pids, network };
}

/**
 * Docker's own memory notation (`docker run --memory`): a number of bytes, or one with the unit
 * k, m or g (binary, as Docker reads them; `256mb`, `256MiB` are taken too). Under 6 MiB is
 * refused, because Docker refuses it at container creation, which would fail every attempt.
 */
function readMemory(reader: YamlReader, node: unknown, name: string): number | undefined {
  const bytes =
    isScalar(node) && (typeof node.value === "string" || typeof node.value === "number")
      ? parseMemorySize(node.value)
      : undefined;
  if (bytes === undefined) {
    reader.report(
      node,
      `memory of host "${name}" must be a size like 256m, got ${describe(node)}`,
      "write bytes or a number with k, m or g, as docker run --memory takes it: 512m, 1g",
    );
    return undefined;
  }
  if (bytes < minimumContainerMemory) {
    reader.report(
      node,
      `memory of host "${name}" is below Docker's minimum of 6m`,
      "give the container at least 6m",
    );
    return undefined;
  }
  return bytes;
}
