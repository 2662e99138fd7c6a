import { BlockList, isIPv4, isIPv6 } from "node:net";
import { assertExhaustive } from "../exhaustive.js";
import { embeddedIPv4 } from "./internal-addresses.js";

/**
 * One entry of the config file's `direct_hosts:` or `notify_hosts:`, each optionally followed by
 * `:PORT` or `:LOW-HIGH` (without it, every port):
 * - `agents.example.com`: that name, whatever addresses it resolves to;
 * - `*.example.com`: every name under example.com (not example.com itself);
 * - `10.1.2.3`, `10.0.0.0/8`: that address or range, whatever name led to it;
 * - `[fd00::1]`, `[fd00::/8]`: IPv6, always in brackets.
 */
interface DestinationEntry {
  host:
    | { kind: "name"; name: string }
    | { kind: "suffix"; suffix: string }
    | { kind: "range"; list: BlockList; family: "ipv4" | "ipv6" };
  ports: readonly [number, number] | undefined;
}

/** Where a call goes: the URL's host as written (lowercase), its port, and the address it reaches. */
export interface Destination {
  hostname: string;
  port: number;
  address: string;
}

const namePattern =
  /^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$/;

/** What is wrong with one entry, or undefined when it reads. */
export function destinationEntryProblem(text: string): string | undefined {
  const parsed = parseEntry(text);
  return typeof parsed === "string" ? parsed : undefined;
}

function parseEntry(text: string): DestinationEntry | string {
  const entry = text.trim().toLowerCase();
  const shown = JSON.stringify(text);
  let hostPart = entry;
  let portPart: string | undefined;
  if (entry.startsWith("[")) {
    const close = entry.indexOf("]");
    if (close < 0) return `${shown} has "[" without "]"`;
    hostPart = entry.slice(0, close + 1);
    const rest = entry.slice(close + 1);
    if (rest !== "") {
      if (!rest.startsWith(":")) return `${shown}: after "]" only :PORT or :LOW-HIGH may follow`;
      portPart = rest.slice(1);
    }
  } else if (entry.includes(":")) {
    const colon = entry.lastIndexOf(":");
    if (entry.indexOf(":") !== colon)
      return `${shown}: write IPv6 addresses in brackets, e.g. [fd00::1]:7072`;
    hostPart = entry.slice(0, colon);
    portPart = entry.slice(colon + 1);
  }
  const ports = portPart === undefined ? undefined : parsePorts(portPart);
  if (typeof ports === "string") return `${shown}: ${ports}`;
  const host = parseHost(hostPart);
  if (typeof host === "string") return `${shown}: ${host}`;
  return { host, ports };
}

function parsePorts(text: string): readonly [number, number] | string {
  const match = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(text);
  if (!match) return `the port must be a number or LOW-HIGH, got ${JSON.stringify(text)}`;
  const low = Number(match[1]);
  const high = match[2] === undefined ? low : Number(match[2]);
  if (low < 1 || high > 65535 || low > high) return `ports run from 1 to 65535, low before high`;
  return [low, high];
}

function parseHost(text: string): DestinationEntry["host"] | string {
  if (text === "") return "the host is missing";
  if (text.startsWith("[")) {
    const [address, prefix] = text.slice(1, -1).split("/") as [string, string | undefined];
    if (!isIPv6(address)) return `${JSON.stringify(address)} is not an IPv6 address`;
    return range(address, prefix, "ipv6", 128);
  }
  if (/^[\d./]+$/.test(text)) {
    const [address, prefix] = text.split("/") as [string, string | undefined];
    if (!isIPv4(address)) return `${JSON.stringify(address)} is not an IPv4 address`;
    return range(address, prefix, "ipv4", 32);
  }
  if (text.startsWith("*.")) {
    const suffix = text.slice(2).replace(/\.$/, "");
    if (!namePattern.test(suffix) || !suffix.includes(".")) {
      return "a wildcard names a domain with at least two labels, e.g. *.example.com";
    }
    return { kind: "suffix", suffix };
  }
  const name = text.replace(/\.$/, "");
  if (!namePattern.test(name)) return `${JSON.stringify(text)} is not a host name`;
  return { kind: "name", name };
}

function range(
  address: string,
  prefix: string | undefined,
  family: "ipv4" | "ipv6",
  bits: number,
): DestinationEntry["host"] | string {
  const length = prefix === undefined ? bits : Number(prefix);
  if (prefix !== undefined && !/^\d{1,3}$/.test(prefix)) return `the prefix length must be a number`;
  if (length > bits) return `an ${family} prefix is at most /${bits}`;
  const list = new BlockList();
  list.addSubnet(address, length, family);
  return { kind: "range", list, family };
}

/** The destinations an operator lists for one kind of outbound call. */
export class DestinationList {
  private readonly entries: DestinationEntry[];

  /** Throws on an entry that does not read; check them first with `destinationEntryProblem`. */
  constructor(readonly texts: readonly string[]) {
    this.entries = texts.map((text) => {
      const entry = parseEntry(text);
      if (typeof entry === "string") throw new Error(entry);
      return entry;
    });
  }

  /** Whether an entry names the destination: its host name, or the address it reaches; and its port. */
  lists(destination: Destination): boolean {
    const hostname = destination.hostname.toLowerCase().replace(/\.$/, "");
    const address = destination.address.replace(/^\[|\]$/g, "");
    const v4 = isIPv4(address) ? address : embeddedIPv4(address);
    return this.entries.some((entry) => {
      if (entry.ports && (destination.port < entry.ports[0] || destination.port > entry.ports[1])) {
        return false;
      }
      const host = entry.host;
      switch (host.kind) {
        case "name":
          return hostname === host.name;
        case "suffix":
          return hostname.endsWith(`.${host.suffix}`);
        case "range":
          if (host.family === "ipv4") return v4 !== undefined && host.list.check(v4, "ipv4");
          return isIPv6(address) && host.list.check(address, "ipv6");
        default:
          return assertExhaustive(host, "destination entry");
      }
    });
  }
}
