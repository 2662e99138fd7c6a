import { lookup as dnsLookup } from "node:dns";
import { createServer, request as httpRequest, type IncomingMessage, type Server } from "node:http";
import { connect, isIP, type Socket } from "node:net";
import { internalRangeOf } from "../core/outbound/internal-addresses.js";

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
 * Where to connect for an allowed entry: its host as it is, or for a public-only entry the first
 * address its name resolves to, once every address it resolves to has been checked.
 */
function addressFor(entry: EgressDestination, host: string): Promise<string> {
  if (!entry.publicOnly) return Promise.resolve(host);
  return new Promise((resolve, reject) => {
    dnsLookup(host, { all: true }, (error, addresses) => {
      if (error) return reject(error);
      const inside = addresses.find((found) => internalRangeOf(found.address) !== undefined);
      if (inside || addresses.length === 0) {
        return reject(
          new InternalDestination(`${host} leads to ${inside?.address ?? "no address"}, an internal address`),
        );
      }
      resolve(addresses[0]!.address);
    });
  });
}

class InternalDestination extends Error {}

/**
 * The egress a sandboxed agent gets: an HTTP proxy that lets through only the destinations it
 * is given (the run's model endpoint and git remote, by host and port) and refuses the rest,
 * saying so. It speaks both forms HTTP clients use through `HTTPS_PROXY` / `HTTP_PROXY`:
 * `CONNECT host:port` (a TLS tunnel it never looks into) and a request with an absolute URI
 * (`GET http://host:port/path`), which it forwards. Names are compared as written, before any
 * lookup, and the proxy itself resolves them: a sandbox has no network, so a name is all it can
 * give.
 */
export async function startEgressProxy(
  listen: EgressListen,
  options: EgressProxyOptions,
): Promise<EgressProxy> {
  const sockets = new Set<Socket>();
  const refuse = (destination: EgressDestination | undefined, raw: string): string => {
    if (destination) options.refused(destination);
    return destination
      ? `egress to ${destination.host}:${destination.port} is not allowed from this sandbox`
      : `not a destination: ${raw.slice(0, 200)}`;
  };

  const server: Server = createServer((req, res) => {
    const url = safeUrl(req.url);
    const destination = url && url.protocol === "http:" ? parseAuthority(url.host, 80) : undefined;
    const entry = destination && allowed(options.allow, destination);
    if (!url || !destination || !entry) {
      res.writeHead(403, { "content-type": "text/plain", connection: "close" });
      res.end(`${refuse(destination, req.url ?? "")}\n`);
      return;
    }
    addressFor(entry, destination.host).then(
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
        const internal = error instanceof InternalDestination;
        res.writeHead(internal ? 403 : 502, { "content-type": "text/plain", connection: "close" });
        res.end(
          internal
            ? `${refuse(destination, "")} (${error.message})\n`
            : `cannot resolve ${destination.host}: ${error.message}\n`,
        );
      },
    );
  });

  server.on("connect", (req: IncomingMessage, client: Socket, head: Buffer) => {
    const destination = parseAuthority(req.url ?? "");
    const entry = destination && allowed(options.allow, destination);
    const forbidden = (why: string) =>
      client.end(`HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n${why}\n`);
    if (!destination || !entry) {
      forbidden(refuse(destination, req.url ?? ""));
      return;
    }
    client.on("error", () => client.destroy());
    addressFor(entry, destination.host).then(
      (address) => tunnel(client, head, destination, address),
      (error: Error) => {
        if (error instanceof InternalDestination) forbidden(`${refuse(destination, "")} (${error.message})`);
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

  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    if ("socketPath" in listen) server.listen(listen.socketPath, resolve);
    else server.listen(listen.port, listen.host, resolve);
  });
  const where = server.address();
  const address = typeof where === "string" ? where : where ? `${where.address}:${where.port}` : "";
  return {
    address,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
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
