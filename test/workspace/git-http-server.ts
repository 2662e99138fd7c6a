import { spawn } from "node:child_process";
import { once } from "node:events";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * A git server over HTTP for tests: `git http-backend` (the real smart-HTTP server of git) behind
 * a node:http server on 127.0.0.1 that asks for Basic auth, like GitHub does for a token. It can
 * answer the next requests with a 5xx to stand for a flaky server, and records what it was sent.
 */
export interface GitHttpServer {
  /** The clone URL of `<projectRoot>/<name>` (no credentials in it). */
  url(name: string): string;
  /** Every request: method, path and whether it carried the right credentials. */
  readonly requests: { method: string; path: string; authorized: boolean; authorization?: string }[];
  /** Answers the next `count` requests with `status` (503 by default) before serving again. */
  failNext(count: number, status?: number): void;
  /**
   * Leaves the next request unanswered (a server that hangs); resolves when it arrives, with a
   * promise of its connection closing (the client gave up or was killed).
   */
  hangNext(): Promise<{ closed: Promise<void> }>;
  close(): Promise<void>;
}

export interface GitHttpServerOptions {
  /** The folder holding the bare repos it serves. */
  projectRoot: string;
  username: string;
  password: string;
  /** Serve without asking for credentials, as a public repository is. */
  anonymous?: boolean;
}

export async function startGitHttpServer(options: GitHttpServerOptions): Promise<GitHttpServer> {
  const requests: GitHttpServer["requests"] = [];
  let failures: { count: number; status: number } = { count: 0, status: 503 };
  let hang: ((closed: Promise<void>) => void) | undefined;
  const expected = `Basic ${Buffer.from(`${options.username}:${options.password}`).toString("base64")}`;

  const server = createServer((request, response) => {
    const url = new URL(request.url ?? "/", "http://127.0.0.1");
    const authorization = request.headers.authorization;
    const authorized = options.anonymous === true || authorization === expected;
    requests.push({ method: request.method ?? "GET", path: url.pathname, authorized, authorization });
    if (hang) {
      const arrived = hang;
      hang = undefined;
      arrived(once(request.socket, "close").then(() => undefined));
      return;
    }
    if (failures.count > 0) {
      failures.count--;
      request.resume();
      response.writeHead(failures.status, { "Content-Type": "text/plain" }).end("try again later\n");
      return;
    }
    if (!authorized) {
      request.resume();
      response
        .writeHead(401, { "WWW-Authenticate": 'Basic realm="git"', "Content-Type": "text/plain" })
        .end("authentication required\n");
      return;
    }
    serveWithHttpBackend(options.projectRoot, url, request, response);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;

  return {
    url: (name) => `http://127.0.0.1:${port}/${name}`,
    requests,
    failNext(count, status = 503) {
      failures = { count, status };
    },
    hangNext() {
      return new Promise((resolve) => {
        hang = (closed) => resolve({ closed });
      });
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Runs `git http-backend` as a CGI for one request and streams its answer back. */
function serveWithHttpBackend(
  projectRoot: string,
  url: URL,
  request: IncomingMessage,
  response: ServerResponse,
) {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    GIT_PROJECT_ROOT: projectRoot,
    GIT_HTTP_EXPORT_ALL: "1",
    PATH_INFO: decodeURIComponent(url.pathname),
    REQUEST_METHOD: request.method ?? "GET",
    QUERY_STRING: url.search.slice(1),
    CONTENT_TYPE: request.headers["content-type"] ?? "",
    // http-backend enables receive-pack (push) only for an authenticated user.
    REMOTE_USER: "runyard-test",
    REMOTE_ADDR: "127.0.0.1",
  };
  if (request.headers["content-encoding"]) env.HTTP_CONTENT_ENCODING = request.headers["content-encoding"];
  if (request.headers["git-protocol"]) env.GIT_PROTOCOL = String(request.headers["git-protocol"]);
  if (request.headers["content-length"]) env.CONTENT_LENGTH = request.headers["content-length"];
  const backend = spawn("git", ["http-backend"], { env, stdio: ["pipe", "pipe", "inherit"] });
  request.pipe(backend.stdin);

  // CGI output: headers ("Status: 200 OK" among them), a blank line, then the body.
  let head = Buffer.alloc(0);
  let headersDone = false;
  backend.stdout.on("data", (chunk: Buffer) => {
    if (headersDone) {
      response.write(chunk);
      return;
    }
    head = Buffer.concat([head, chunk]);
    const end = head.indexOf("\r\n\r\n");
    if (end < 0) return;
    headersDone = true;
    let status = 200;
    for (const line of head.subarray(0, end).toString("latin1").split("\r\n")) {
      const colon = line.indexOf(":");
      const name = line.slice(0, colon).trim();
      const value = line.slice(colon + 1).trim();
      if (name.toLowerCase() === "status") status = Number.parseInt(value, 10);
      else response.setHeader(name, value);
    }
    response.writeHead(status);
    response.write(head.subarray(end + 4));
  });
  backend.on("close", () => {
    if (!headersDone) response.writeHead(500).end("http-backend gave no answer\n");
    else response.end();
  });
}
