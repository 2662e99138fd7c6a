import type { IncomingMessage } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { runnerSocketPath } from "../src/core/protocol.js";
import { adminToken, runnerToken, startTestServer, type TestServer } from "./helpers/server.js";

/**
 * The runner socket is a route of the API like any other: a refused upgrade is an ordinary HTTP
 * answer with the API's error body and headers, said before anything is upgraded.
 */

let server: TestServer;

beforeAll(async () => {
  server = await startTestServer();
}, 60_000);

afterAll(async () => {
  await server?.proc.kill();
});

interface Refusal {
  status: number;
  headers: IncomingMessage["headers"];
  body: string;
}

/** Opens the runner socket as a runner (or anyone) would; resolves with a refused upgrade's answer. */
function refusedUpgrade(token: string | undefined): Promise<Refusal> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`${server.url.replace(/^http/, "ws")}${runnerSocketPath}`, {
      headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
    });
    const timer = setTimeout(() => {
      socket.terminate();
      reject(new Error("the runner socket answered nothing within 10 s"));
    }, 10_000);
    socket.on("error", () => undefined);
    socket.on("open", () => {
      clearTimeout(timer);
      socket.close();
      reject(new Error("the runner socket was upgraded"));
    });
    socket.on("unexpected-response", (_request, response) => {
      let body = "";
      response.setEncoding("utf8");
      response.on("data", (chunk: string) => {
        body += chunk;
      });
      response.on("end", () => {
        clearTimeout(timer);
        resolve({ status: response.statusCode ?? 0, headers: response.headers, body });
        socket.terminate();
      });
    });
  });
}

describe("the runner socket's token check", () => {
  it.each([
    {
      what: "no token",
      token: () => undefined,
      status: 401,
      code: "UNAUTHORIZED",
      message: /needs a runner token/,
    },
    {
      what: "a mistyped token",
      token: () => "ryt_not_a_token",
      status: 401,
      code: "UNAUTHORIZED",
      message: /not valid/,
    },
    {
      what: "an admin token",
      token: () => adminToken,
      status: 403,
      code: "FORBIDDEN",
      message: /runner tokens only/,
    },
  ])("answers $what with $status and the API's error body and headers", async (row) => {
    const refusal = await refusedUpgrade(row.token());
    expect(refusal.status).toBe(row.status);
    expect(refusal.headers["content-type"]).toMatch(/^application\/json/);
    // The security headers of every API answer (docs/security.md): the auth hook ran.
    expect(refusal.headers["x-content-type-options"]).toBe("nosniff");
    const body = JSON.parse(refusal.body) as { error: { code: string; message: string; hint: string } };
    expect(body.error.code).toBe(row.code);
    expect(body.error.message).toMatch(row.message);
    expect(body.error.hint).toContain("runyard token create --runner");
  });

  it("upgrades a runner token's socket and welcomes its hello", async () => {
    const token = await runnerToken(server.url);
    const socket = new WebSocket(`${server.url.replace(/^http/, "ws")}${runnerSocketPath}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    const first = await new Promise<{ type: string }>((resolve, reject) => {
      socket.on("error", reject);
      socket.on("open", () =>
        socket.send(
          JSON.stringify({
            type: "hello",
            jobs: [],
            runner: { id: "socket-auth-runner", hostname: "h", group: "default" },
          }),
        ),
      );
      socket.on("message", (data) => resolve(JSON.parse(String(data)) as { type: string }));
    });
    socket.close();
    expect(first.type).toBe("welcome");
  });
});
