/** `inventory.hosts`: where steps run. */
import { isMap, isScalar } from "yaml";
import { quoted } from "../core/quoted-input.js";
import type { ContainerPos, HostSpec } from "./model.js";
import { executorKeys, readContainer } from "./parse-container.js";
import { describe, type Fields, type YamlReader } from "./yaml-reader.js";

const directKeys = ["address", "token"];
const runnerKeys = ["group", "labels"];
const hostKeys = [...directKeys, ...runnerKeys, ...executorKeys];

export interface Inventory {
  hosts: Record<string, HostSpec>;
  /** Where the container settings of hosts with `executor: docker` are written. */
  containerPos: Record<string, ContainerPos>;
  /** Every host name written, valid or not: a step targeting a broken host is not also "unknown". */
  names: string[];
}

export function readInventory(reader: YamlReader, node: unknown): Inventory {
  const inventory: Inventory = { hosts: {}, containerPos: {}, names: [] };
  const map = reader.mapping(node, "inventory");
  if (!map) return inventory;
  const hostsField = reader.fields(map, "in inventory", ["hosts"]).get("hosts");
  if (!hostsField) {
    reader.report(
      map,
      "inventory has no hosts",
      "add inventory.hosts, or remove inventory to run on this machine",
    );
    return inventory;
  }
  const hosts = reader.mapping(hostsField.value, "inventory.hosts");
  if (!hosts) return inventory;
  if (hosts.items.length === 0) {
    reader.report(hostsField.key, "inventory.hosts is empty", "add a host such as `local: {}`");
  }
  for (const pair of hosts.items) {
    const key = reader.deref(pair.key);
    const name = isScalar(key) ? String(key.value ?? "") : "";
    if (name === "") {
      reader.report(key, "a host needs a name");
      continue;
    }
    inventory.names.push(name);
    const spec = readHost(reader, reader.deref(pair.value), name, inventory.containerPos);
    if (spec) inventory.hosts[name] = spec;
  }
  return inventory;
}

function readHost(
  reader: YamlReader,
  node: unknown,
  name: string,
  positions: Record<string, ContainerPos>,
): HostSpec | undefined {
  if (node === null || node === undefined || (isScalar(node) && node.value === null))
    return { kind: "local" };
  if (!isMap(node)) {
    reader.report(
      node,
      `host "${name}" must be a mapping, got ${describe(node)}`,
      "write {} for this machine, {address, token} for an agent-server, or {group, labels} for runners",
    );
    return undefined;
  }
  const fields = reader.fields(node, `in host "${name}"`, hostKeys);
  if (!checkOneKind(reader, fields, name)) return undefined;
  const container = readContainer(reader, fields, name);
  if (container === null) return undefined;
  if (container) {
    const image = reader.pos(fields.get("image")?.value);
    const network = fields.get("network");
    positions[name] = { image, network: network ? reader.pos(network.value) : image };
  }
  if (fields.has("address")) {
    if (container) {
      // An agent-server runs what it is sent as processes on its machine; it has no engine.
      reader.report(
        fields.get("executor")!.key,
        `host "${name}" has an address, and direct hosts cannot use executor docker`,
        "remove address to run on the server's runners with the docker label (add group/labels to choose them), or remove the executor settings",
      );
      return undefined;
    }
    return readDirect(reader, fields, name);
  }
  const withContainer = container ? { container } : {};
  if (fields.has("group") || fields.has("labels")) {
    const runner = readRunner(reader, fields, name);
    return runner && { ...runner, ...withContainer };
  }
  if (fields.has("token")) {
    reader.report(
      fields.get("token")!.key,
      `host "${name}" has a token but no address`,
      "add address: http://HOST:PORT",
    );
    return undefined;
  }
  return { kind: "local", ...withContainer };
}

/** A host is reached one way: directly at an address, or through the server's runners. */
function checkOneKind(reader: YamlReader, fields: Fields, name: string): boolean {
  const agent = directKeys.find((key) => fields.has(key));
  const runner = runnerKeys.find((key) => fields.has(key));
  if (!agent || !runner) return true;
  reader.report(
    fields.get(runner)!.key,
    `host "${name}" mixes "${agent}" and "${runner}"`,
    "a host is either {address, token} (an agent-server) or {group, labels} (runners of the server)",
  );
  return false;
}

function readDirect(reader: YamlReader, fields: Fields, name: string): HostSpec | undefined {
  const addressNode = fields.get("address")!.value;
  const address = reader.string(addressNode, `address of host "${name}"`);
  const tokenField = fields.get("token");
  const token = tokenField && reader.string(tokenField.value, `token of host "${name}"`);
  if (address === undefined || (tokenField && token === undefined)) return undefined;
  if (!isHttpUrl(address)) {
    reader.report(
      addressNode,
      `address of host "${name}" must be an http(s) URL, got ${quoted(address)}`,
      'write it like "http://127.0.0.1:7072"',
    );
    return undefined;
  }
  return token === undefined ? { kind: "direct", address } : { kind: "direct", address, token };
}

function readRunner(reader: YamlReader, fields: Fields, name: string): HostSpec | undefined {
  const groupField = fields.get("group");
  const labelsField = fields.get("labels");
  const group = groupField && reader.name(groupField.value, `group of host "${name}"`);
  const labels = labelsField ? reader.nameList(labelsField.value, `labels of host "${name}"`) : [];
  if ((groupField && group === undefined) || labels === undefined) return undefined;
  return group === undefined ? { kind: "runner", labels } : { kind: "runner", group, labels };
}

export function isHttpUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return (url.protocol === "http:" || url.protocol === "https:") && url.hostname !== "";
  } catch {
    return false;
  }
}
