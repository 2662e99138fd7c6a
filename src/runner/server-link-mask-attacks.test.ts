import { connect, createServer, type Server } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { makeToken, startInProcessServer } from "../../test/helpers/in-process.js";
import { frameServer } from "../../test/helpers/websocket-frames.js";
import { silentLogger } from "../core/logger.js";
import { runnerSocketPath } from "../core/protocol.js";
import type { RunnerLink } from "../core/runner-link.js";
import type { RunningServer } from "../server/server.js";
import { maskAddsNothing, openServerLink } from "./server-link.js";

/*
 * Attacks on the runner's all-zero mask (`maskAddsNothing` in server-link.ts): can a link that
 * leaves the machine be made to go unmasked, by how its host is written or by a proxy the
 * runner's environment names, and does the server take frames with no mask at all? (A frame to
 * a host off loopback keeping its random mask on the wire: server-link.test.ts.)
 */

/** Opens the runner's link to `url`; the link sends `text` once open. */
function link(url: string, text: string): RunnerLink {
  let socket: RunnerLink | undefined;
  openServerLink(
    { url, token: "t", failover: false, logger: silentLogger },
    {
      linked: (made) => {
        socket = made;
      },
      opened: () => socket?.send(text),
      away: () => {},
      refused: () => {},
      failed: () => {},
    },
  );
  return socket!;
}

describe("the runner's all-zero mask, attacked", () => {
  const servers: Server[] = [];
  const links: RunnerLink[] = [];
  afterEach(() => {
    for (const made of links.splice(0)) made.terminate();
    for (const server of servers.splice(0)) server.close();
  });

  it("keeps the mask for every way of writing a host that is not loopback, whatever text it starts or ends with", () => {
    for (const url of [
      "ws://127.0.0.1.nip.io/runner",
      "ws://127.0.0.1.evil.example/runner",
      "ws://127.0.0.1%2Eevil.example/runner",
      "ws://127.0.0.1\t.evil.example/runner",
      "ws://localhost.evil.example/runner",
      "ws://localhost./runner",
      "ws://evil-localhost/runner",
      "ws://localhost:80@evil.example/runner",
      "ws://evil.example/#@localhost",
      "ws://evil.example/?host=127.0.0.1",
      "ws://[::ffff:127.0.0.1]/runner",
      "ws://128.0.0.1/runner",
      "ws://10.0.0.1/runner",
      "https://runyard.example/runner",
    ])
      expect(maskAddsNothing(new URL(url)), url).toBe(false);
    // Written otherwise, these are loopback: the URL parser gives the host the socket then dials.
    for (const url of [
      "ws://0x7f.1/runner",
      "ws://2130706433/runner",
      "ws://017700000001/runner",
      "ws://LOCALHOST/runner",
      "ws://[0:0:0:0:0:0:0:1]/runner",
      "ws://127.0.0.1:80\\@evil.example/runner",
    ]) {
      const parsed = new URL(url);
      expect(maskAddsNothing(parsed), url).toBe(true);
      expect(["127.0.0.1", "localhost", "[::1]"]).toContain(parsed.hostname);
    }
  });

  it("goes straight to a loopback server whatever proxy the runner's environment names: no proxy carries an unmasked link", async () => {
    const proxied: string[] = [];
    const proxy = createServer((socket) => {
      proxied.push(socket.remoteAddress ?? "");
      socket.destroy();
    });
    servers.push(proxy);
    await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", () => resolve()));
    const address = proxy.address();
    const proxyUrl = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
    const names = ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"];
    const saved = [...names, "NO_PROXY", "no_proxy"].map((name) => [name, process.env[name]] as const);
    for (const name of names) process.env[name] = proxyUrl;
    delete process.env.NO_PROXY;
    delete process.env.no_proxy;
    try {
      const started = await frameServer("127.0.0.1");
      servers.push(started.server);
      links.push(link(`http://127.0.0.1:${started.port}`, JSON.stringify({ type: "hello" })));
      const frame = await started.first;
      expect(frame.mask).toEqual([0, 0, 0, 0]);
      expect(proxied).toEqual([]);
    } finally {
      for (const [name, value] of saved)
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
    }
  });
});

/** One client frame: FIN, text, the mask bit as given, and the payload XORed with `mask` if any. */
function frame(text: string, mask: Buffer | undefined): Buffer {
  const payload = Buffer.from(text);
  expect(payload.length).toBeLessThan(126);
  const head = Buffer.from([0x81, (mask ? 0x80 : 0) | payload.length]);
  if (!mask) return Buffer.concat([head, payload]);
  const masked = Buffer.from(payload.map((byte, i) => byte ^ mask[i % 4]!));
  return Buffer.concat([head, mask, masked]);
}

describe("the server's runner socket, sent frames by hand", () => {
  let server: RunningServer;
  let runnerToken: string;

  beforeAll(async () => {
    server = await startInProcessServer();
    runnerToken = await makeToken(server, "runner");
  });

  afterAll(async () => {
    await server?.close();
  });

  /** Upgrades a raw TCP socket to the runner socket, sends `bytes`, and resolves with what came back by the close. */
  function sendRaw(bytes: Buffer): Promise<{ closeCode?: number; text: string }> {
    const { port } = new URL(server.url);
    return new Promise((resolve, reject) => {
      const socket = connect(Number(port), "127.0.0.1");
      let seen = Buffer.alloc(0);
      let upgraded = false;
      const timer = setTimeout(() => socket.destroy(), 10_000);
      socket.on("connect", () => {
        socket.write(
          `GET ${runnerSocketPath} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
            `Sec-WebSocket-Key: ${Buffer.alloc(16, 7).toString("base64")}\r\nSec-WebSocket-Version: 13\r\n` +
            `Authorization: Bearer ${runnerToken}\r\n\r\n`,
        );
      });
      socket.on("data", (chunk: Buffer) => {
        seen = Buffer.concat([seen, chunk]);
        if (upgraded) {
          // A close frame (opcode 8) ends the exchange; a text frame is the server's answer.
          if (seen.length >= 2 && (seen[0]! & 0x0f) === 8) socket.end();
          if (seen.includes("welcome")) socket.end();
          return;
        }
        const end = seen.indexOf("\r\n\r\n");
        if (end < 0) return;
        expect(seen.subarray(0, 12).toString()).toBe("HTTP/1.1 101");
        upgraded = true;
        seen = seen.subarray(end + 4);
        socket.write(bytes);
      });
      socket.on("error", reject);
      socket.on("close", () => {
        clearTimeout(timer);
        const closeCode = seen.length >= 4 && (seen[0]! & 0x0f) === 8 ? seen.readUInt16BE(2) : undefined;
        resolve({ ...(closeCode === undefined ? {} : { closeCode }), text: seen.toString("latin1") });
      });
    });
  }

  const hello = JSON.stringify({
    type: "hello",
    jobs: [],
    runner: { id: "raw", hostname: "raw", capacity: 1, labels: [] },
  });

  it("closes the socket (1002) on a frame with no mask at all, from any client", async () => {
    const answer = await sendRaw(frame(hello, undefined));
    expect(answer.closeCode).toBe(1002);
    expect(answer.text).not.toContain("welcome");
  });

  it("takes a frame masked with zeros as any masked frame (what the runner sends on loopback and TLS)", async () => {
    expect((await sendRaw(frame(hello, Buffer.alloc(4)))).text).toContain("welcome");
    expect((await sendRaw(frame(hello, Buffer.from([1, 2, 3, 4])))).text).toContain("welcome");
  });
});
