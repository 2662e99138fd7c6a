import { readFileSync } from "node:fs";
import { isIPv4, isIPv6 } from "node:net";
import { internalCidrs, internalRangeOf } from "../../core/outbound/internal-addresses.js";

/**
 * The nftables ruleset of a tenant's namespace: its own loopback, what `allowed` lists (ranges,
 * each optionally with `:PORT` or `:LOW-HIGH`, as `step_network_allow` writes them; names are for
 * the proxy and are left out here), DNS (port 53) to the runner's own name servers (`resolvers`,
 * its /etc/resolv.conf's, which the sandbox reads too), and no other internal address nor any of
 * the runner's own (`own`). Every other destination, public, passes.
 */
export function plainTcpRules(
  allowed: readonly string[],
  own: Iterable<string>,
  resolvers: readonly string[] = [],
): string {
  const internal = internalCidrs();
  const ownV4 = [...own].filter((address) => isIPv4(address) && internalRangeOf(address) === undefined);
  const ownV6 = [...own].filter((address) => isIPv6(address) && internalRangeOf(address) === undefined);
  const accepts = allowed.flatMap((entry) => {
    const range = rangeOf(entry);
    if (!range) return [];
    const ports = range.ports ? ` meta l4proto { tcp, udp } th dport ${range.ports}` : "";
    return [`    ${range.family === "ipv4" ? "ip" : "ip6"} daddr ${range.cidr}${ports} accept`];
  });
  const dns = resolvers.flatMap((address) =>
    isIPv4(address) || isIPv6(address)
      ? [
          `    ${isIPv4(address) ? "ip" : "ip6"} daddr ${address} meta l4proto { tcp, udp } th dport 53 accept`,
        ]
      : [],
  );
  const set = (name: string, type: string, elements: string[]) => [
    `  set ${name} {`,
    `    type ${type}`,
    "    flags interval",
    "    auto-merge",
    `    elements = { ${elements.join(", ")} }`,
    "  }",
  ];
  return [
    "table inet runyard {",
    ...set("internal4", "ipv4_addr", [...internal.ipv4, ...ownV4]),
    ...set("internal6", "ipv6_addr", [...internal.ipv6, ...ownV6]),
    "  chain output {",
    "    type filter hook output priority 0; policy accept;",
    '    oifname "lo" accept',
    ...accepts,
    ...dns,
    "    ip daddr @internal4 meta l4proto tcp reject with tcp reset",
    "    ip daddr @internal4 reject",
    "    ip6 daddr @internal6 meta l4proto tcp reject with tcp reset",
    "    ip6 daddr @internal6 reject",
    "  }",
    "}",
    "",
  ].join("\n");
}

/** An entry of `step_network_allow` that names addresses: its range, family and ports. */
function rangeOf(
  entry: string,
): { cidr: string; family: "ipv4" | "ipv6"; ports: string | undefined } | undefined {
  const text = entry.trim().toLowerCase();
  const bracketed = /^\[([0-9a-f:.]+)(\/\d{1,3})?\](?::(\d{1,5}(?:-\d{1,5})?))?$/.exec(text);
  if (bracketed?.[1] && isIPv6(bracketed[1]))
    return { cidr: `${bracketed[1]}${bracketed[2] ?? ""}`, family: "ipv6", ports: bracketed[3] };
  const v4 = /^([\d.]+)(\/\d{1,2})?(?::(\d{1,5}(?:-\d{1,5})?))?$/.exec(text);
  if (v4?.[1] && isIPv4(v4[1])) return { cidr: `${v4[1]}${v4[2] ?? ""}`, family: "ipv4", ports: v4[3] };
  return undefined;
}

/**
 * The name servers of `resolv.conf` a sandbox can reach through pasta: its loopback ones (a local
 * stub such as systemd-resolved's 127.0.0.53) are the sandbox's own loopback there, so they are
 * left out, and names then resolve only through the proxy.
 */
export function hostResolvers(file = "/etc/resolv.conf"): string[] {
  let text = "";
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return [];
  }
  return [...text.matchAll(/^\s*nameserver\s+(\S+)/gm)]
    .map((match) => match[1]!.split("%")[0]!)
    .filter((address) => (isIPv4(address) || isIPv6(address)) && internalRangeOf(address) !== "loopback");
}
