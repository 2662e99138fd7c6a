import { createHash } from "node:crypto";
import { createServer, type Server, type Socket } from "node:net";

/*
 * A WebSocket server that reads its client's first frame as the bytes on the wire, as a proxy
 * between them would see them (the runner's link tests: src/runner/server-link*.test.ts).
 */

const webSocketGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/**
 * A server on `host` that answers the upgrade and hands back the client's first frame: its peer's
 * address, whether its mask bit is set, its 4-byte mask and its (short) payload as sent.
 */
export function frameServer(host: string): Promise<{
  server: Server;
  port: number;
  first: Promise<{ peer: string; masked: boolean; mask: number[]; payload: Buffer }>;
}> {
  let got: (frame: { peer: string; masked: boolean; mask: number[]; payload: Buffer }) => void = () => {};
  const first = new Promise<{ peer: string; masked: boolean; mask: number[]; payload: Buffer }>((resolve) => {
    got = resolve;
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
      const length = (seen[1] ?? 0) & 0x7f;
      if (seen.length >= 6 + length && length < 126) {
        got({
          peer: socket.remoteAddress ?? "",
          // The mask bit every client sets; a frame without it has no mask bytes.
          masked: ((seen[1] ?? 0) & 0x80) !== 0,
          mask: [...seen.subarray(2, 6)],
          payload: Buffer.from(seen.subarray(6, 6 + length)),
        });
      }
    });
  });
  return new Promise((resolve) => {
    server.listen(0, host, () => {
      const address = server.address();
      resolve({ server, port: typeof address === "object" && address ? address.port : 0, first });
    });
  });
}
