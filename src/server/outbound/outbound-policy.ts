import { lookup as dnsLookup } from "node:dns";
import { isIP, type LookupFunction } from "node:net";
import { RunyardError } from "../../core/errors.js";
import { type Destination, DestinationList } from "../../core/outbound/destination-list.js";
import { internalHostOf, internalRangeOf } from "../../core/outbound/internal-addresses.js";

/** The config file key that lists what a kind of outbound call may reach. */
export type OutboundKey = "direct_hosts" | "notify_hosts" | "mcp_hosts";

const what: Record<OutboundKey, string> = {
  direct_hosts: "a direct host's address",
  notify_hosts: "a notify URL",
  mcp_hosts: "an MCP server's url",
};

/**
 * Where the server may call for a member's run: any public address, and internal addresses
 * (loopback, link-local, private, ...) only when the operator's list for this kind of call names
 * them. Checked on the URL at submit, and on the address actually connected to at connect time.
 */
export class OutboundPolicy {
  private readonly allowed: DestinationList;

  constructor(
    readonly key: OutboundKey,
    entries: readonly string[],
  ) {
    this.allowed = new DestinationList(entries);
  }

  /** The refusal of a URL known before any DNS lookup (an IP literal, localhost); undefined: may go on. */
  refusalOf(url: string): RunyardError | undefined {
    const parsed = new URL(url);
    const hostname = parsed.hostname.replace(/^\[|\]$/g, "");
    const kind = internalHostOf(hostname);
    if (kind === undefined) return undefined;
    return this.refusalAt({
      hostname,
      port: portOf(parsed),
      address: isIP(hostname) ? hostname : "127.0.0.1",
    });
  }

  /** The refusal of one resolved destination; undefined when the server may connect to it. */
  refusalAt(destination: Destination): RunyardError | undefined {
    const kind = internalRangeOf(destination.address) ?? internalHostOf(destination.hostname);
    if (kind === undefined || this.allowed.lists(destination)) return undefined;
    const shown =
      destination.address === destination.hostname
        ? destination.address
        : `${destination.hostname} (${destination.address})`;
    return new RunyardError(
      "DESTINATION_NOT_ALLOWED",
      `${what[this.key]} leads to ${shown}, a ${kind} address, which this server's \`${this.key}:\` does not list`,
      {
        hint: `Ask the server's operator to add the host (or host:port) to \`${this.key}:\` in the server's config file, or use a public address.`,
      },
    );
  }

  /**
   * A DNS lookup for `http.request` that resolves once and hands the socket only addresses the
   * policy allows, so a name cannot pass here and point inside later (DNS rebinding).
   */
  lookupFor(port: number): LookupFunction {
    return (hostname, options, callback) => {
      dnsLookup(hostname, { ...options, all: true }, (error, addresses) => {
        if (error) return callback(error, "", 4);
        const refusal = addresses
          .map((entry) => this.refusalAt({ hostname, port, address: entry.address }))
          .find((found) => found !== undefined);
        if (refusal) return callback(refusal, "", 4);
        if (options.all) return callback(null, addresses);
        const first = addresses[0]!;
        callback(null, first.address, first.family);
      });
    };
  }
}

export function portOf(url: URL): number {
  if (url.port !== "") return Number(url.port);
  return url.protocol === "https:" ? 443 : 80;
}
