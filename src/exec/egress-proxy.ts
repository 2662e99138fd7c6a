import { createServer, request as httpRequest, type IncomingMessage, type Server } from "node:http";
import { connect, isIP, type Socket } from "node:net";

/** A destination a sandboxed process may reach: a host name or address, and a port. */
export interface EgressDestination {
  host: string;
  port: number;
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

function allowed(list: readonly EgressDestination[], destination: EgressDestination): boolean {
  const host = normalHost(destination.host);
  return list.some((entry) => normalHost(entry.host) === host && entry.port === destination.port);
}

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
    if (!url || !destination || !allowed(options.allow, destination)) {
      res.writeHead(403, { "content-type": "text/plain", connection: "close" });
      res.end(`${refuse(destination, req.url ?? "")}\n`);
      return;
    }
    const upstream = httpRequest(
      {
        host: destination.host,
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
  });

  server.on("connect", (req: IncomingMessage, client: Socket, head: Buffer) => {
    const destination = parseAuthority(req.url ?? "");
    if (!destination || !allowed(options.allow, destination)) {
      client.end(
        `HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n${refuse(destination, req.url ?? "")}\n`,
      );
      return;
    }
    let established = false;
    const upstream = connect(destination.port, destination.host, () => {
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
  });

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
