import { createServer, request } from "node:http";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deadline } from "./deadline.js";

setFlagsFromString("--expose-gc");
const collect = runInNewContext("gc") as () => void;

describe("deadline", () => {
  const server = createServer(() => {
    // Never answers.
  });
  let port = 0;
  beforeAll(async () => {
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const address = server.address();
    port = typeof address === "object" && address ? address.port : 0;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  /** A POST to the receiver that never answers, ended by `signal`: how it ended. */
  const post = (signal: AbortSignal) =>
    new Promise<string>((resolve) => {
      const sent = request({ host: "127.0.0.1", port, method: "POST", signal }, () => resolve("answered"));
      sent.on("error", (error) => resolve(error.name));
      sent.end("x");
    });

  it("ends requests to a receiver that never answers at its time while the collector runs, where AbortSignal.any of a timeout may never fire", async () => {
    const stopping = new AbortController();
    const collector = setInterval(collect, 20);
    try {
      const endings = await Promise.all(
        Array.from({ length: 10 }, async () => {
          const limit = deadline(300, stopping.signal);
          try {
            return await post(limit.signal);
          } finally {
            limit.clear();
          }
        }),
      );
      expect(endings).toEqual(Array(10).fill("AbortError"));
    } finally {
      clearInterval(collector);
    }
  });

  it("gives a TimeoutError as its reason, follows another signal's abort with that one's reason, and starts aborted when one already is", async () => {
    const timed = deadline(10);
    await new Promise((resolve) => timed.signal.addEventListener("abort", resolve));
    expect((timed.signal.reason as DOMException).name).toBe("TimeoutError");

    const stopping = new AbortController();
    const followed = deadline(60_000, undefined, stopping.signal);
    stopping.abort(new Error("server stopping"));
    expect(followed.signal.aborted).toBe(true);
    expect((followed.signal.reason as Error).message).toBe("server stopping");
    followed.clear();

    expect(deadline(60_000, AbortSignal.abort("gone")).signal.reason).toBe("gone");
  });

  it("stops following the other signals once cleared", () => {
    const stopping = new AbortController();
    const limit = deadline(60_000, stopping.signal);
    limit.clear();
    stopping.abort();
    expect(limit.signal.aborted).toBe(false);
  });
});
