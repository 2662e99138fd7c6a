import { BlockList, isIPv4, isIPv6 } from "node:net";

/**
 * Address ranges that lead into the server's own machine or network rather than the internet:
 * loopback, link-local (cloud metadata lives there), private, carrier-grade NAT, unspecified,
 * multicast and reserved. The server calls them for a member only where the operator lists them.
 */
const v4Ranges: ReadonlyArray<readonly [string, number, string]> = [
  ["0.0.0.0", 8, "unspecified"],
  ["10.0.0.0", 8, "private"],
  ["100.64.0.0", 10, "shared (carrier-grade NAT)"],
  ["127.0.0.0", 8, "loopback"],
  ["169.254.0.0", 16, "link-local"],
  ["172.16.0.0", 12, "private"],
  ["192.0.0.0", 24, "IETF protocol assignments"],
  ["192.168.0.0", 16, "private"],
  ["198.18.0.0", 15, "benchmarking"],
  ["224.0.0.0", 4, "multicast"],
  ["240.0.0.0", 4, "reserved"],
];

const v6Ranges: ReadonlyArray<readonly [string, number, string]> = [
  ["::", 128, "unspecified"],
  ["::1", 128, "loopback"],
  ["fe80::", 10, "link-local"],
  ["fec0::", 10, "site-local"],
  ["fc00::", 7, "private (unique local)"],
  ["ff00::", 8, "multicast"],
  // RFC 8215's local-use NAT64 prefix: a translator of the local network, which reaches its
  // private IPv4 addresses (64:ff9b:1::a00:5 may be 10.0.0.5) as 64:ff9b::/96 reaches public ones.
  ["64:ff9b:1::", 48, "local-use NAT64"],
];

/**
 * The ranges above as CIDR text, for filters that take ranges rather than ask this module (a
 * sandbox's nftables rules): IPv4, and IPv6 with every form that carries an internal IPv4 range
 * (mapped, compatible, NAT64, 6to4).
 */
export function internalCidrs(): { ipv4: string[]; ipv6: string[] } {
  const ipv4 = v4Ranges.map(([network, prefix]) => `${network}/${prefix}`);
  const carried = v4Ranges.flatMap(([network, prefix]) => {
    const [a, b, c, d] = network.split(".").map(Number) as [number, number, number, number];
    const high = ((a << 8) | b).toString(16);
    const low = ((c << 8) | d).toString(16);
    // In hex groups only: nftables does not read a dotted quad after some prefixes (64:ff9b::).
    return [
      `::ffff:${high}:${low}/${96 + prefix}`,
      `::${high}:${low}/${96 + prefix}`,
      `64:ff9b::${high}:${low}/${96 + prefix}`,
      `2002:${high}:${low}::/${16 + prefix}`,
    ];
  });
  return { ipv4, ipv6: [...v6Ranges.map(([network, prefix]) => `${network}/${prefix}`), ...carried] };
}

const ranges = v4Ranges.map(([network, prefix, kind]) => {
  const list = new BlockList();
  list.addSubnet(network, prefix, "ipv4");
  return { list, family: "ipv4" as const, kind };
});
const v6 = v6Ranges.map(([network, prefix, kind]) => {
  const list = new BlockList();
  list.addSubnet(network, prefix, "ipv6");
  return { list, family: "ipv6" as const, kind };
});

/**
 * The kind of internal range an IP address is in (`loopback`, `private`, ...), or undefined for a
 * public address or text that is no IP address. IPv6 forms that carry an IPv4 address (mapped
 * `::ffff:127.0.0.1`, compatible `::127.0.0.1`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) are
 * judged by that IPv4 address.
 */
export function internalRangeOf(address: string): string | undefined {
  const bare = address.startsWith("[") && address.endsWith("]") ? address.slice(1, -1) : address;
  if (isIPv4(bare)) return ranges.find((range) => range.list.check(bare, "ipv4"))?.kind;
  if (!isIPv6(bare)) return undefined;
  const embedded = embeddedIPv4(bare);
  if (embedded !== undefined) {
    const kind = internalRangeOf(embedded);
    if (kind !== undefined) return kind;
  }
  return v6.find((range) => range.list.check(bare, "ipv6"))?.kind;
}

/** The IPv4 address an IPv6 address carries by a standard mapping, if it carries one. */
export function embeddedIPv4(address: string): string | undefined {
  const groups = ipv6Groups(address);
  if (!groups) return undefined;
  const zeros = (from: number, to: number): boolean => groups.slice(from, to).every((g) => g === 0);
  const quad = (high: number, low: number): string =>
    [high >> 8, high & 0xff, low >> 8, low & 0xff].join(".");
  // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible; ::1 and :: are themselves).
  if (zeros(0, 5) && (groups[5] === 0xffff || (groups[5] === 0 && (groups[6] ?? 0) !== 0))) {
    return quad(groups[6]!, groups[7]!);
  }
  if (groups[0] === 0x64 && groups[1] === 0xff9b && zeros(2, 6)) return quad(groups[6]!, groups[7]!);
  if (groups[0] === 0x2002) return quad(groups[1]!, groups[2]!);
  return undefined;
}

/** The eight 16-bit groups of an IPv6 address (with `::` and a trailing dotted quad expanded). */
function ipv6Groups(address: string): number[] | undefined {
  let text = address.split("%")[0]!.toLowerCase();
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const bytes = dotted[1]!.split(".").map(Number);
    text = `${text.slice(0, dotted.index)}${((bytes[0]! << 8) | bytes[1]!).toString(16)}:${((bytes[2]! << 8) | bytes[3]!).toString(16)}`;
  }
  const [head, tail] = text.split("::") as [string, string | undefined];
  const parse = (part: string): number[] =>
    part === "" ? [] : part.split(":").map((g) => Number.parseInt(g, 16));
  const front = parse(head);
  if (tail === undefined) return front.length === 8 ? front : undefined;
  const back = parse(tail);
  const missing = 8 - front.length - back.length;
  return missing < 0 ? undefined : [...front, ...new Array<number>(missing).fill(0), ...back];
}

/**
 * The internal kind a URL's host is known to be without asking DNS: an IP literal in any form the
 * URL parser reads (`2130706433`, `0x7f.1` and `127.1` are 127.0.0.1), or `localhost` and names
 * under it, which always mean this machine.
 */
export function internalHostOf(hostname: string): string | undefined {
  const name = hostname.toLowerCase().replace(/\.$/, "");
  if (name === "localhost" || name.endsWith(".localhost")) return "loopback";
  return internalRangeOf(name);
}
