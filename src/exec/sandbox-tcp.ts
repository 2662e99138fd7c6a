import { execFile } from "node:child_process";
import { isIPv4, isIPv6 } from "node:net";
import { internalCidrs, internalRangeOf } from "../core/outbound/internal-addresses.js";

/**
 * Plain TCP and UDP (ssh, a database on a public address) for a sandbox with a network of its
 * own: `pasta` (passt) gives its namespace a user-mode network whose connections it makes from
 * the host, and nftables rules set in the namespace before its command starts hold them to
 * public addresses. pasta has no destination filter of its own: without the rules a sandbox would
 * reach the runner's private network and, through pasta's port forwarding, its loopback.
 *
 * It works on a namespace that already exists and whose command has not started yet: a bwrap
 * started with `--info-fd` (which gives its child's pid) and `--block-fd` (which holds the
 * command until the runner writes to it). It costs 50 to 250 ms (pasta's start and nft), so it
 * belongs to a run's sandbox made once, not to each command.
 */

/**
 * The nftables ruleset of a tenant's namespace: its own loopback, what `allowed` lists (ranges,
 * each optionally with `:PORT` or `:LOW-HIGH`, as `step_network_allow` writes them; names are for
 * the proxy and are left out here), and no other internal address nor any of the runner's own
 * (`own`). Every other destination, public, passes.
 */
export function plainTcpRules(allowed: readonly string[], own: Iterable<string>): string {
  const internal = internalCidrs();
  const ownV4 = [...own].filter((address) => isIPv4(address) && internalRangeOf(address) === undefined);
  const ownV6 = [...own].filter((address) => isIPv6(address) && internalRangeOf(address) === undefined);
  const accepts = allowed.flatMap((entry) => {
    const range = rangeOf(entry);
    if (!range) return [];
    const ports = range.ports ? ` meta l4proto { tcp, udp } th dport ${range.ports}` : "";
    return [`    ${range.family === "ipv4" ? "ip" : "ip6"} daddr ${range.cidr}${ports} accept`];
  });
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

export interface PlainTcpTools {
  pasta?: string;
  nft?: string;
  nsenter?: string;
}

/**
 * Sets `rules` in the network namespace of `pid` (a bwrap's child, held by `--block-fd`), then
 * attaches pasta to it: an interface with the host's addresses and routes, connections made from
 * the host, no port forwarded either way (a listener in the sandbox is not exposed on the host,
 * and the host's loopback is not reached from the sandbox), and the gateway address not mapped to
 * the host. Resolves once pasta runs in the background; pasta ends with the namespace.
 */
export async function attachPlainTcp(pid: number, rules: string, tools: PlainTcpTools = {}): Promise<void> {
  // Root's CAP_NET_ADMIN holds in every namespace below its own. A runner of another user would
  // have to enter the sandbox's user namespace, where exec drops the capabilities of a uid that
  // is not 0 there (bwrap maps the runner's uid as itself): not done yet.
  if (process.getuid?.() !== 0)
    throw new Error("plain TCP for a sandbox needs a runner that runs as root (to set its nftables rules)");
  await run(tools.nsenter ?? "nsenter", ["-t", String(pid), "-n", tools.nft ?? "nft", "-f", "-"], rules);
  await run(tools.pasta ?? "pasta", [
    "--config-net",
    "--no-map-gw",
    "-t",
    "none",
    "-u",
    "none",
    "-T",
    "none",
    "-U",
    "none",
    "--quiet",
    // As root pasta would change to nobody, who cannot join the namespace root's bwrap made; and
    // it joins the network namespace only, as the sandbox's user namespace has no uid 0 in it.
    "--runas",
    "0:0",
    "--netns",
    `/proc/${pid}/ns/net`,
    "--netns-only",
  ]);
}

function run(command: string, args: string[], input?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = execFile(command, args, { timeout: 10_000 }, (error, _stdout, stderr) => {
      if (error) reject(new Error(`${command} failed: ${String(stderr).trim() || error.message}`));
      else resolve();
    });
    child.stdin?.end(input ?? "");
  });
}
