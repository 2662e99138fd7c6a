import { createHash } from "node:crypto";
import { createServer, type Server, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger } from "../core/logger.js";
import type { RunnerLink } from "../core/runner-link.js";
import { maskAddsNothing, openServerLink } from "./server-link.js";

const webSocketGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/**
 * A server that answers the upgrade and hands back the mask of the client's first frame: the
 * bytes on the wire, as a proxy between them would see them.
 */
function maskServer(): Promise<{ server: Server; port: number; firstMask: Promise<Buffer> }> {
  let gotMask: (mask: Buffer) => void = () => {};
  const firstMask = new Promise<Buffer>((resolve) => {
    gotMask = resolve;
  });
  const server = createServer((socket: Socket) => {
    let seen = Buffer.alloc(0);
    let upgraded = false;
    socket.on("data", (chunk: Buffer) => {
      seen = Buffer.concat([seen, chunk]);
      if (!upgraded) {
        const end = seen.indexOf("\r\n\r\n");
        if (end < 0) return;
        const key = /sec-websocket-key: *(\S+)/i.exec(seen.subarray(0, end).toString())?.[1] ?? "";
        const accept = createHash("sha1")
          .update(key + webSocketGuid)
          .digest("base64");
        socket.write(
          `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
        );
        upgraded = true;
        seen = seen.subarray(end + 4);
      }
      // A short frame: two header bytes (the mask bit set by every client), then the 4-byte mask.
      if (seen.length >= 6) {
        expect(seen[1]! & 0x80).toBe(0x80);
        gotMask(Buffer.from(seen.subarray(2, 6)));
      }
    });
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      resolve({ server, port: typeof address === "object" && address ? address.port : 0, firstMask });
    });
  });
}

describe("the runner's link to its server", () => {
  let server: Server | undefined;
  let link: RunnerLink | undefined;
  afterEach(() => {
    link?.terminate();
    server?.close();
  });

  it("sends its frames unmasked (an all-zero mask) to a server on this machine's loopback", async () => {
    const started = await maskServer();
    server = started.server;
    openServerLink(
      { url: `http://127.0.0.1:${started.port}`, token: "t", failover: false, logger: silentLogger },
      {
        linked: (socket) => {
          link = socket;
        },
        opened: () => link?.send(JSON.stringify({ type: "hello" })),
        away: () => {},
        refused: () => {},
        failed: () => {},
      },
    );
    expect([...(await started.firstMask)]).toEqual([0, 0, 0, 0]);
  });

  it("keeps the mask on a plain link that leaves the machine, and drops it on loopback and TLS", () => {
    expect(maskAddsNothing(new URL("ws://runyard.example.com/runner"))).toBe(false);
    expect(maskAddsNothing(new URL("ws://10.0.0.5:8080/runner"))).toBe(false);
    expect(maskAddsNothing(new URL("ws://127.0.0.1.example.com/runner"))).toBe(false);
    expect(maskAddsNothing(new URL("ws://127.0.0.1:8080/runner"))).toBe(true);
    expect(maskAddsNothing(new URL("ws://127.1.2.3/runner"))).toBe(true);
    expect(maskAddsNothing(new URL("ws://localhost:8080/runner"))).toBe(true);
    expect(maskAddsNothing(new URL("ws://[::1]:8080/runner"))).toBe(true);
    expect(maskAddsNothing(new URL("wss://runyard.example.com/runner"))).toBe(true);
  });
});
