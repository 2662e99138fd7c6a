import { lookup as dnsLookup } from "node:dns";
import { createServer, request as httpRequest, type IncomingMessage, type Server } from "node:http";
import {
  connect,
  createServer as createNetServer,
  isIP,
  type Server as NetServer,
  type Socket,
} from "node:net";
import { networkInterfaces } from "node:os";
import type { DestinationList } from "../core/outbound/destination-list.js";
import { embeddedIPv4, internalHostOf, internalRangeOf } from "../core/outbound/internal-addresses.js";

/** A destination a sandboxed process may reach: a host name or address, and a port. */
export interface EgressDestination {
  host: string;
  port: number;
  /**
   * Let through only where the name leads to public addresses (a destination a member named, such
   * as their own model endpoint): the proxy resolves it once and connects to the address it
   * checked, so a name cannot lead to the runner's private network, now or after a DNS change.
   * The operator's own destinations go anywhere.
   */
  publicOnly?: boolean;
  /**
   * The address connected to in place of `host` (an operator's entry only): a listener of the
   * runner's own that a sandbox reaches by a name, such as the model key proxy on its loopback.
   */
  address?: string;
}

/** Where the proxy listens: a Unix socket (mounted into a container) or a loopback port. */
export type EgressListen = { socketPath: string } | { host: string; port: number };

export interface EgressProxyOptions {
  /** The only destinations let through; every other is refused. */
  allow: readonly EgressDestination[];
  /** Told of each refusal, for the run's `notice: egress to HOST:PORT refused` line. */
  refused: (destination: EgressDestination) => void;
}

export interface EgressProxy {
  /** Where it listens: the socket path, or `host:port`. */
  address: string;
  close(): Promise<void>;
}

/**
 * What one listener of a proxy lets through. The proxy asks it once per request or tunnel, with
 * the host as the client wrote it, and connects to the address it answers, never resolving the
 * name again: a name cannot pass the check and lead elsewhere afterwards.
 */
export interface EgressPolicy {
  /** The address to connect to for `destination`; rejects with `EgressRefused` when it may not go. */
  addressFor(destination: EgressDestination): Promise<string>;
  /** Told of each refusal (a run's notice, the runner's log). */
  refused(destination: EgressDestination): void;
}

/** A destination a policy refuses; `reason`, when given, is said after the refusal. */
export class EgressRefused extends Error {
  constructor(readonly reason?: string) {
    super(reason ?? "not allowed");
  }
}

/** A proxy with one or more listeners, each with its own policy (a sandbox's socket, a tenant's). */
export interface EgressProxyServer {
  /** Starts listening at `listen` for clients held to `policy`; resolves with the address. */
  listen(listen: EgressListen, policy: EgressPolicy): Promise<string>;
  /** Stops every listener and ends every connection. */
  close(): Promise<void>;
}

/** The host as compared: lower case, an IPv6 literal without its brackets. */
function normalHost(host: string): string {
  const bare = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  return bare.toLowerCase().replace(/\.$/, "");
}

/** `host:port` as written in a CONNECT line or a Host header; undefined when it is neither. */
export function parseAuthority(authority: string, defaultPort?: number): EgressDestination | undefined {
  const match = /^(\[[0-9a-fA-F:.]+\]|[^:[\]/\s@]+)(?::(\d{1,5}))?$/.exec(authority.trim());
  if (!match?.[1]) return undefined;
  const port = match[2] === undefined ? defaultPort : Number(match[2]);
  if (port === undefined || !Number.isInteger(port) || port < 1 || port > 65_535) return undefined;
  const host = normalHost(match[1]);
  if (host.startsWith("[") || (host.includes(":") && isIP(host) !== 6)) return undefined;
  return { host, port };
}

/** The entry that lets `destination` through, if one does. An operator's entry wins over a member's. */
function allowed(
  list: readonly EgressDestination[],
  destination: EgressDestination,
): EgressDestination | undefined {
  const host = normalHost(destination.host);
  const matching = list.filter((entry) => normalHost(entry.host) === host && entry.port === destination.port);
  return matching.find((entry) => !entry.publicOnly) ?? matching[0];
}

/**
 * A sandboxed agent's policy: only the destinations listed, by host and port as written. For an
 * operator's entry the host is connected to as it is; for a public-only entry (a member's) its
 * name is resolved once and every address it leads to must be public.
 */
export function allowListPolicy(
  allow: readonly EgressDestination[],
  refused: (destination: EgressDestination) => void,
): EgressPolicy {
  return {
    refused,
    async addressFor(destination) {
      const entry = allowed(allow, destination);
      if (!entry) throw new EgressRefused();
      if (!entry.publicOnly) return entry.address ?? destination.host;
      return checkedAddress(destination, () => false);
    },
  };
}

/**
 * A tenant's sandboxed steps' policy: any public address, and internal ones (loopback, private,
 * link-local, metadata, unspecified, and IPv6 forms that carry them) only where `internal` lists
 * them (by name, address or range, and port). The name is resolved once, every address it leads
 * to is checked, and the first is connected to.
 */
export function publicPolicy(
  internal: DestinationList,
  refused: (destination: EgressDestination) => void,
  ownAddresses: () => ReadonlySet<string> = machineAddresses,
): EgressPolicy {
  return {
    refused,
    addressFor: (destination) =>
      checkedAddress(
        destination,
        (address) => internal.lists({ hostname: destination.host, port: destination.port, address }),
        ownAddresses,
      ),
  };
}

/**
 * The addresses of this machine's interfaces: a public one among them leads to the runner's own
 * services listening on every address (0.0.0.0), as loopback does.
 */
export function machineAddresses(): ReadonlySet<string> {
  const found = new Set<string>();
  for (const entries of Object.values(networkInterfaces())) {
    for (const entry of entries ?? []) found.add(entry.address.toLowerCase().split("%")[0]!);
  }
  return found;
}

/** The internal kind of `address` (`host` as written), this machine's own addresses included. */
function internalKindOf(address: string, host: string, own: ReadonlySet<string>): string | undefined {
  const kind = internalRangeOf(address) ?? internalHostOf(host);
  if (kind !== undefined) return kind;
  const bare = address.toLowerCase().split("%")[0]!;
  const carried = embeddedIPv4(bare);
  return own.has(bare) || (carried !== undefined && own.has(carried)) ? "this runner's own" : undefined;
}

/**
 * The first address `destination`'s host resolves to, once every address it resolves to is public
 * (and none of this machine's own) or let in by `internalAllowed`; rejects with EgressRefused otherwise.
 */
function checkedAddress(
  destination: EgressDestination,
  internalAllowed: (address: string) => boolean,
  ownAddresses: () => ReadonlySet<string> = machineAddresses,
): Promise<string> {
  const host = destination.host;
  return new Promise((resolve, reject) => {
    dnsLookup(host, { all: true }, (error, addresses) => {
      if (error) return reject(error);
      const own = ownAddresses();
      const inside = addresses
        .map((found) => ({ address: found.address, kind: internalKindOf(found.address, host, own) }))
        .find((found) => found.kind !== undefined && !internalAllowed(found.address));
      if (inside || addresses.length === 0) {
        return reject(
          new EgressRefused(
            inside
              ? `${host} leads to ${inside.address}, an internal address (${inside.kind})`
              : `${host} leads to no address`,
          ),
        );
      }
      resolve(addresses[0]!.address);
    });
  });
}

/**
 * The egress a sandboxed agent gets: an HTTP proxy that lets through only the destinations it
 * is given (the run's model endpoint and git remote, by host and port) and refuses the rest,
 * saying so (see `createEgressProxy`).
 */
export async function startEgressProxy(
  listen: EgressListen,
  options: EgressProxyOptions,
): Promise<EgressProxy> {
  const proxy = createEgressProxy();
  try {
    const address = await proxy.listen(listen, allowListPolicy(options.allow, options.refused));
    return { address, close: () => proxy.close() };
  } catch (error) {
    await proxy.close();
    throw error;
  }
}

/**
 * An HTTP proxy for sandboxes that have no network of their own. It speaks both forms HTTP
 * clients use through `HTTPS_PROXY` / `HTTP_PROXY`: `CONNECT host:port` (a TLS tunnel it never
 * looks into) and a request with an absolute URI (`GET http://host:port/path`), which it
 * forwards. What passes is the policy's of the listener the client came through; the proxy
 * itself resolves names (through the policy): a sandbox has no network, so a name is all it
 * can give.
 */
export function createEgressProxy(): EgressProxyServer {
  const sockets = new Set<Socket>();
  const listeners: NetServer[] = [];
  const policies = new WeakMap<Socket, EgressPolicy>();
  const policyOf = (socket: Socket): EgressPolicy | undefined => policies.get(socket);
  const refusal = (
    policy: EgressPolicy | undefined,
    destination: EgressDestination | undefined,
    raw: string,
    reason?: string,
  ): string => {
    if (destination) policy?.refused(destination);
    return destination
      ? `egress to ${destination.host}:${destination.port} is not allowed from this sandbox${reason ? ` (${reason})` : ""}`
      : `not a destination: ${raw.slice(0, 200)}`;
  };

  const server: Server = createServer((req, res) => {
    const policy = policyOf(req.socket);
    const url = safeUrl(req.url);
    const destination = url && url.protocol === "http:" ? parseAuthority(url.host, 80) : undefined;
    if (!policy || !url || !destination) {
      res.writeHead(403, { "content-type": "text/plain", connection: "close" });
      res.end(`${refusal(policy, destination, req.url ?? "")}\n`);
      return;
    }
    policy.addressFor(destination).then(
      (address) => {
        const upstream = httpRequest(
          {
            host: address,
            port: destination.port,
            method: req.method,
            path: `${url.pathname}${url.search}`,
            headers: forwardedHeaders(req),
          },
          (answer) => {
            res.writeHead(answer.statusCode ?? 502, answer.headers);
            answer.pipe(res);
          },
        );
        upstream.on("error", (error) => {
          if (!res.headersSent) res.writeHead(502, { "content-type": "text/plain" });
          res.end(`cannot reach ${destination.host}:${destination.port}: ${error.message}\n`);
        });
        req.pipe(upstream);
      },
      (error: Error) => {
        const refused = error instanceof EgressRefused;
        res.writeHead(refused ? 403 : 502, { "content-type": "text/plain", connection: "close" });
        res.end(
          refused
            ? `${refusal(policy, destination, "", error.reason)}\n`
            : `cannot resolve ${destination.host}: ${error.message}\n`,
        );
      },
    );
  });

  server.on("connect", (req: IncomingMessage, client: Socket, head: Buffer) => {
    const policy = policyOf(client);
    const destination = parseAuthority(req.url ?? "");
    const forbidden = (why: string) =>
      client.end(`HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n${why}\n`);
    if (!policy || !destination) {
      forbidden(refusal(policy, destination, req.url ?? ""));
      return;
    }
    client.on("error", () => client.destroy());
    policy.addressFor(destination).then(
      (address) => tunnel(client, head, destination, address),
      (error: Error) => {
        if (error instanceof EgressRefused) forbidden(refusal(policy, destination, "", error.reason));
        else
          client.end(
            `HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain\r\n\r\ncannot resolve ${destination.host}: ${error.message}\n`,
          );
      },
    );
  });
  const tunnel = (client: Socket, head: Buffer, destination: EgressDestination, address: string): void => {
    let established = false;
    const upstream = connect(destination.port, address, () => {
      established = true;
      client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    const end = () => {
      upstream.destroy();
      client.destroy();
    };
    upstream.on("error", (error) => {
      if (!established)
        client.end(
          `HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain\r\n\r\ncannot reach ${destination.host}:${destination.port}: ${error.message}\n`,
        );
      else end();
    });
    client.on("error", end);
    // Either end closing ends the tunnel: nothing stays open behind a sandbox that went away.
    client.on("close", end);
    upstream.on("close", () => {
      if (established) end();
    });
  };

  return {
    async listen(listen, policy) {
      // Each listener hands its connections to the one HTTP server, marked with its policy.
      const listener = createNetServer((socket) => {
        sockets.add(socket);
        socket.on("close", () => sockets.delete(socket));
        policies.set(socket, policy);
        server.emit("connection", socket);
      });
      await new Promise<void>((resolve, reject) => {
        listener.once("error", reject);
        if ("socketPath" in listen) listener.listen(listen.socketPath, resolve);
        else listener.listen(listen.port, listen.host, resolve);
      });
      listeners.push(listener);
      const where = listener.address();
      return typeof where === "string" ? where : where ? `${where.address}:${where.port}` : "";
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await Promise.all(
        listeners
          .splice(0)
          .map((listener) => new Promise<void>((resolve) => listener.close(() => resolve()))),
      );
      server.close();
    },
  };
}

function safeUrl(raw: string | undefined): URL | undefined {
  try {
    return raw ? new URL(raw) : undefined;
  } catch {
    return undefined;
  }
}

/** The request's headers without those meant for the proxy itself. */
function forwardedHeaders(req: IncomingMessage): Record<string, string | string[]> {
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined || name === "proxy-authorization" || name === "proxy-connection") continue;
    headers[name] = value;
  }
  return headers;
}
