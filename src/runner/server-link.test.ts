import type { Server } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { frameServer } from "../../test/helpers/websocket-frames.js";
import { silentLogger } from "../core/logger.js";
import type { RunnerLink } from "../core/runner-link.js";
import { maskAddsNothing, openServerLink } from "./server-link.js";

describe("the runner's link to its server", () => {
  let server: Server | undefined;
  let link: RunnerLink | undefined;
  afterEach(() => {
    link?.terminate();
    server?.close();
  });

  it("sends its frames unmasked (an all-zero mask) to a server on this machine's loopback", async () => {
    const started = await frameServer("127.0.0.1");
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
    const frame = await started.first;
    expect(frame.masked).toBe(true);
    expect(frame.mask).toEqual([0, 0, 0, 0]);
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
