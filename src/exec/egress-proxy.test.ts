import { mkdtempSync, rmSync } from "node:fs";
import { createServer as createHttpServer, request } from "node:http";
import { connect, createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { DestinationList } from "../core/outbound/destination-list.js";
import {
  createEgressProxy,
  type EgressDestination,
  type EgressProxy,
  machineAddresses,
  parseAuthority,
  publicPolicy,
  startEgressProxy,
} from "./egress-proxy.js";

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

async function listening(server: Server, host: string): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  closers.push(() => new Promise((resolve) => server.close(() => resolve())));
  const address = server.address();
  if (!address || typeof address === "string") throw new Error("no port");
  return address.port;
}

async function proxy(allow: EgressDestination[], refused: EgressDestination[]): Promise<EgressProxy> {
  const folder = mkdtempSync(join(tmpdir(), "runyard-egress-"));
  closers.push(async () => rmSync(folder, { recursive: true, force: true }));
  const socketPath = join(folder, "egress.sock");
  const started = await startEgressProxy({ socketPath }, { allow, refused: (d) => refused.push(d) });
  closers.push(() => started.close());
  return started;
}

/** Sends `CONNECT target` over the proxy's socket; answers the status line and the tunnel. */
function tunnel(
  socketPath: string,
  target: string,
): Promise<{ status: string; send: (text: string) => Promise<string> }> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    let buffered = "";
    socket.on("error", reject);
    socket.once("connect", () => socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`));
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString("utf8");
      const end = buffered.indexOf("\r\n\r\n");
      if (end < 0) return;
      socket.off("data", onData);
      const status = buffered.slice(0, buffered.indexOf("\r\n"));
      closers.push(async () => void socket.destroy());
      resolve({
        status: `${status}${buffered.slice(end + 4) ? `\n${buffered.slice(end + 4)}` : ""}`,
        send: (text) =>
          new Promise((answered) => {
            socket.once("data", (data) => answered(data.toString("utf8")));
            socket.write(text);
          }),
      });
    };
    socket.on("data", onData);
  });
}

describe("the egress proxy", () => {
  it("tunnels to an allowed host and port, and refuses a listener on another loopback address, which never sees a connection", async () => {
    const echo = createServer((socket) => socket.on("data", (data) => socket.write(`echo ${data}`)));
    const echoPort = await listening(echo, "127.0.0.1");
    let forbiddenConnections = 0;
    const forbidden = createServer((socket) => {
      forbiddenConnections++;
      socket.end();
    });
    const forbiddenPort = await listening(forbidden, "127.0.0.2");
    const refused: EgressDestination[] = [];
    const { address } = await proxy([{ host: "127.0.0.1", port: echoPort }], refused);

    const open = await tunnel(address, `127.0.0.1:${echoPort}`);
    expect(open.status).toBe("HTTP/1.1 200 Connection Established");
    expect(await open.send("hello")).toBe("echo hello");

    const shut = await tunnel(address, `127.0.0.2:${forbiddenPort}`);
    expect(shut.status).toContain("HTTP/1.1 403 Forbidden");
    expect(shut.status).toContain(`egress to 127.0.0.2:${forbiddenPort} is not allowed from this sandbox`);
    // The same host on another port is another destination.
    const otherPort = await tunnel(address, `127.0.0.1:${forbiddenPort}`);
    expect(otherPort.status).toContain("403");
    expect(refused).toEqual([
      { host: "127.0.0.2", port: forbiddenPort },
      { host: "127.0.0.1", port: forbiddenPort },
    ]);
    expect(forbiddenConnections).toBe(0);
  });

  it("connects an operator's entry that names an address to that address: a name no resolver knows reaches a listener of the runner's", async () => {
    const echo = createServer((socket) => socket.on("data", (data) => socket.write(`echo ${data}`)));
    const echoPort = await listening(echo, "127.0.0.1");
    const { address } = await proxy(
      [{ host: "model-key-proxy.runyard.internal", port: echoPort, address: "127.0.0.1" }],
      [],
    );
    const open = await tunnel(address, `model-key-proxy.runyard.internal:${echoPort}`);
    expect(open.status).toBe("HTTP/1.1 200 Connection Established");
    expect(await open.send("hello")).toBe("echo hello");
  });

  it("forwards a plain HTTP request with an absolute URI to an allowed destination only", async () => {
    const api = createHttpServer((req, res) => {
      res.writeHead(200, { "content-type": "text/plain" });
      res.end(
        `${req.method} ${req.url} auth=${req.headers.authorization ?? ""} proxy=${req.headers["proxy-authorization"] ?? "none"}`,
      );
    });
    const apiPort = await listening(api, "127.0.0.1");
    const refused: EgressDestination[] = [];
    const { address } = await proxy([{ host: "LOCALHOST", port: apiPort }], refused);
    const get = (url: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = request(
          {
            socketPath: address,
            path: url,
            headers: { authorization: "Bearer k", "proxy-authorization": "Basic x" },
          },
          (res) => {
            let body = "";
            res.on("data", (chunk) => (body += chunk));
            res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
          },
        );
        req.on("error", reject);
        req.end();
      });
    expect(await get(`http://localhost:${apiPort}/v1/models?x=1`)).toEqual({
      status: 200,
      body: "GET /v1/models?x=1 auth=Bearer k proxy=none",
    });
    const other = await get(`http://127.0.0.2:${apiPort}/`);
    expect(other.status).toBe(403);
    expect(refused).toEqual([{ host: "127.0.0.2", port: apiPort }]);
  });

  it("lets a member's destination through only where its name leads to public addresses", async () => {
    let reached = 0;
    const inside = createServer((socket) => {
      reached++;
      socket.end();
    });
    const insidePort = await listening(inside, "127.0.0.1");
    const refused: EgressDestination[] = [];
    // A member named their model endpoint; it resolves to the runner's own loopback.
    const { address } = await proxy(
      [
        { host: "localhost", port: insidePort, publicOnly: true },
        { host: "127.0.0.1", port: insidePort, publicOnly: true },
      ],
      refused,
    );
    for (const authority of [`localhost:${insidePort}`, `127.0.0.1:${insidePort}`]) {
      const shut = await tunnel(address, authority);
      expect(shut.status).toContain("HTTP/1.1 403 Forbidden");
      expect(shut.status).toContain("an internal address");
    }
    expect(refused).toEqual([
      { host: "localhost", port: insidePort },
      { host: "127.0.0.1", port: insidePort },
    ]);
    expect(reached).toBe(0);
    // The operator's own entry for the same destination goes through.
    const operator = await proxy(
      [
        { host: "127.0.0.1", port: insidePort, publicOnly: true },
        { host: "127.0.0.1", port: insidePort },
      ],
      [],
    );
    expect((await tunnel(operator.address, `127.0.0.1:${insidePort}`)).status).toBe(
      "HTTP/1.1 200 Connection Established",
    );
  });

  it("refuses a member's endpoint written as any other form of a loopback, unspecified or mapped address, by CONNECT and by absolute URI", async () => {
    let reached = 0;
    const v4 = createServer((socket) => {
      reached++;
      socket.end();
    });
    const port = await listening(v4, "0.0.0.0");
    const v6 = createServer((socket) => {
      reached++;
      socket.end();
    });
    await new Promise<void>((resolve) => v6.listen(port, "::1", resolve));
    closers.push(() => new Promise((resolve) => v6.close(() => resolve())));
    const written = [
      `http://127.1:${port}`,
      `http://2130706433:${port}`,
      `http://0x7f.0.0.1:${port}`,
      `http://0177.0.0.1:${port}`,
      `http://0.0.0.0:${port}`,
      `http://0:${port}`,
      `http://[::1]:${port}`,
      `http://[::ffff:127.0.0.1]:${port}`,
      `http://[::ffff:7f00:1]:${port}`,
      `http://[::]:${port}`,
      `http://localhost.:${port}`,
      `http://LOCALHOST:${port}`,
    ];
    // As the runner reads a task's env (destinationOf in agents/model-endpoints.ts): each URL's
    // host as the URL parser gives it, an IPv6 literal without its brackets.
    const allow = written.map((url) => ({
      host: new URL(url).hostname.replace(/^\[|\]$/g, ""),
      port,
      publicOnly: true,
    }));
    const { address } = await proxy(allow, []);
    for (const url of written) {
      const parsed = new URL(url);
      for (const authority of new Set([parsed.host, url.slice("http://".length)])) {
        const shut = await tunnel(address, authority);
        expect(shut.status, authority).toContain("HTTP/1.1 403 Forbidden");
      }
      const answer = await new Promise<number>((resolve, reject) => {
        const req = request(
          { socketPath: address, path: `${url}/`, headers: { host: parsed.host } },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        req.on("error", reject);
        req.end();
      });
      expect(answer, url).toBe(403);
    }
    expect(reached).toBe(0);
  });

  it("holds each listener to its own policy: a tenant's public-only socket refuses every form of loopback, the one whose operator lists 127.0.0.0/8 reaches it", async () => {
    let reached = 0;
    const port = await listening(
      createServer((socket) => {
        reached++;
        socket.end("hello\n");
      }),
      "127.0.0.1",
    );
    const server = createEgressProxy();
    closers.push(() => server.close());
    const folder = mkdtempSync(join(tmpdir(), "runyard-egress-"));
    closers.unshift(async () => rmSync(folder, { recursive: true, force: true }));
    const refused: EgressDestination[] = [];
    const shut = await server.listen(
      { socketPath: join(folder, "a.sock") },
      publicPolicy(new DestinationList([]), (d) => refused.push(d)),
    );
    const open = await server.listen(
      { socketPath: join(folder, "b.sock") },
      publicPolicy(new DestinationList([`127.0.0.0/8:${port}`]), () => {}),
    );
    for (const authority of [
      `127.0.0.1:${port}`,
      `localhost:${port}`,
      `127.1:${port}`,
      `[::ffff:127.0.0.1]:${port}`,
    ]) {
      const answer = await tunnel(shut, authority);
      expect(answer.status, authority).toContain("HTTP/1.1 403 Forbidden");
      expect(answer.status, authority).toContain("an internal address (loopback)");
    }
    expect(reached).toBe(0);
    expect(refused).toHaveLength(4);
    expect((await tunnel(open, `127.0.0.1:${port}`)).status).toBe(
      "HTTP/1.1 200 Connection Established\nhello\n",
    );
    expect((await tunnel(open, `127.0.0.1:${port + 1 === 65536 ? 1 : port + 1}`)).status).toContain("403");
  });

  it("refuses an address of the runner's own machine though it is public (a service on 0.0.0.0 answers there), in its mapped form too, unless the operator lists it", async () => {
    const own = () => new Set(["203.0.113.7"]);
    const refusal = (policy: ReturnType<typeof publicPolicy>, host: string) =>
      policy.addressFor({ host, port: 5432 }).then(
        () => "allowed",
        (error: Error) => error.message,
      );
    const shut = publicPolicy(new DestinationList([]), () => {}, own);
    expect(await refusal(shut, "203.0.113.7")).toBe(
      "203.0.113.7 leads to 203.0.113.7, an internal address (this runner's own)",
    );
    expect(await refusal(shut, "::ffff:203.0.113.7")).toContain("an internal address (this runner's own)");
    const listed = publicPolicy(new DestinationList(["203.0.113.7:5432"]), () => {}, own);
    expect(await refusal(listed, "203.0.113.7")).toBe("allowed");
    expect(machineAddresses().has("127.0.0.1")).toBe(true);
  });

  it("reads host and port as CONNECT lines and Host headers write them", () => {
    expect(parseAuthority("api.openai.com:443")).toEqual({ host: "api.openai.com", port: 443 });
    expect(parseAuthority("Example.COM.:8080")).toEqual({ host: "example.com", port: 8080 });
    expect(parseAuthority("[::1]:11434")).toEqual({ host: "::1", port: 11434 });
    expect(parseAuthority("example.com", 80)).toEqual({ host: "example.com", port: 80 });
    expect(parseAuthority("example.com")).toBeUndefined();
    expect(parseAuthority("user@example.com:443")).toBeUndefined();
    expect(parseAuthority("example.com:70000")).toBeUndefined();
  });
});
