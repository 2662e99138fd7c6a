import { afterEach, describe, expect, it } from "vitest";
import { loadConfig } from "../src/core/config.js";
import type { RunningServer } from "../src/server/server.js";
import { adminToken, startInProcessServer } from "./helpers/in-process.js";

/*
 * CORS (off by default, exact origins from RUNYARD_CORS_ORIGINS, preflights answered without a
 * token) and the security headers of every answer, on a whole server in this process.
 */

const listed = "https://ui.example.com";
const unlisted = "https://evil.example.net";
const workflow = "name: hello\nsteps:\n  - name: hi\n    action: cmd.run\n    args:\n      cmd: echo hi\n";

let server: RunningServer | undefined;

afterEach(async () => {
  await server?.close();
  server = undefined;
});

function preflight(s: RunningServer, origin: string, url = "/api/runs") {
  return s.app.inject({
    method: "OPTIONS",
    url,
    headers: {
      origin,
      "access-control-request-method": "POST",
      "access-control-request-headers": "authorization, content-type",
    },
  });
}

const corsHeaderNames = (headers: Record<string, unknown>) =>
  Object.keys(headers).filter((name) => name.startsWith("access-control-"));

describe("CORS", () => {
  it("is off by default: no origin gets a CORS header, and a preflight is not answered", async () => {
    server = await startInProcessServer();
    const answer = await preflight(server, listed);
    expect(answer.statusCode).toBe(404);
    expect(corsHeaderNames(answer.headers)).toEqual([]);
    const get = await server.app.inject({
      method: "GET",
      url: "/api/runs",
      headers: { origin: listed, authorization: `Bearer ${adminToken}` },
    });
    expect(get.statusCode).toBe(200);
    expect(corsHeaderNames(get.headers)).toEqual([]);
  });

  it("answers a listed origin's preflight without a token, allowing Authorization", async () => {
    server = await startInProcessServer({ corsOrigins: [listed, "http://localhost:5173"] });
    for (const url of ["/api/runs", "/api/runs/run_x/events", "/api/secrets/KEY", "/api/tokens/tok_1"]) {
      const answer = await preflight(server, listed, url);
      expect(answer.statusCode, url).toBe(204);
      expect(answer.headers["access-control-allow-origin"]).toBe(listed);
      expect(String(answer.headers["access-control-allow-methods"])).toMatch(/POST/);
      expect(String(answer.headers["access-control-allow-methods"])).toMatch(/DELETE/);
      expect(String(answer.headers["access-control-allow-headers"]).toLowerCase()).toContain("authorization");
      expect(String(answer.headers["access-control-allow-headers"]).toLowerCase()).toContain("content-type");
      expect(answer.headers.vary).toMatch(/Origin/);
      expect(answer.headers["access-control-allow-credentials"]).toBeUndefined();
    }
    // The real request after it still needs its token, and its answer is readable by the origin.
    const noToken = await server.app.inject({ method: "GET", url: "/api/runs", headers: { origin: listed } });
    expect(noToken.statusCode).toBe(401);
    expect(noToken.headers["access-control-allow-origin"]).toBe(listed);
    const post = await server.app.inject({
      method: "POST",
      url: "/api/runs",
      headers: { origin: listed, authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
      payload: JSON.stringify({ workflow }),
    });
    expect(post.statusCode).toBe(201);
    expect(post.headers["access-control-allow-origin"]).toBe(listed);
    expect(String(post.headers["access-control-expose-headers"])).toContain("Retry-After");
  });

  it("gives an unlisted origin no CORS header, preflight or not", async () => {
    server = await startInProcessServer({ corsOrigins: [listed] });
    for (const origin of [unlisted, `${listed}.evil.net`, "http://ui.example.com", "null"]) {
      const answer = await preflight(server, origin);
      expect(answer.statusCode, origin).toBe(404);
      expect(corsHeaderNames(answer.headers), origin).toEqual([]);
      const get = await server.app.inject({
        method: "GET",
        url: "/api/runs",
        headers: { origin, authorization: `Bearer ${adminToken}` },
      });
      expect(get.statusCode).toBe(200);
      expect(corsHeaderNames(get.headers), origin).toEqual([]);
    }
  });

  it("reads RUNYARD_CORS_ORIGINS (and the config key) as exact origins, refusing wildcards and paths", () => {
    expect(loadConfig({}).corsOrigins).toEqual([]);
    expect(
      loadConfig({ RUNYARD_CORS_ORIGINS: " https://ui.example.com, http://localhost:5173 ," }).corsOrigins,
    ).toEqual(["https://ui.example.com", "http://localhost:5173"]);
    expect(loadConfig({}, { corsOrigins: ["https://a.example"] }).corsOrigins).toEqual(["https://a.example"]);
    for (const bad of [
      "*",
      "https://ui.example.com/",
      "https://ui.example.com/app",
      "ui.example.com",
      "null",
    ]) {
      expect(() => loadConfig({ RUNYARD_CORS_ORIGINS: bad }), bad).toThrow(/RUNYARD_CORS_ORIGINS/);
    }
  });
});

describe("security headers", () => {
  const expectSecurityHeaders = (headers: Record<string, unknown>, what: string) => {
    expect(headers["x-content-type-options"], what).toBe("nosniff");
    expect(headers["referrer-policy"], what).toBe("no-referrer");
    expect(headers["x-frame-options"], what).toBe("DENY");
    expect(String(headers["content-security-policy"]), what).toContain("default-src 'none'");
    expect(String(headers["content-security-policy"]), what).toContain("frame-ancestors 'none'");
  };

  it("are on every answer: JSON, errors, 404, public routes, metrics; JSON is never cached", async () => {
    server = await startInProcessServer();
    const bearer = { authorization: `Bearer ${adminToken}` };
    const answers = {
      health: await server.app.inject({ method: "GET", url: "/health" }),
      openapi: await server.app.inject({ method: "GET", url: "/openapi.json" }),
      runs: await server.app.inject({ method: "GET", url: "/api/runs", headers: bearer }),
      unauthorized: await server.app.inject({ method: "GET", url: "/api/runs" }),
      invalid: await server.app.inject({ method: "GET", url: "/api/runs?limit=0", headers: bearer }),
      missing: await server.app.inject({ method: "GET", url: "/api/runs/run_nope", headers: bearer }),
      noRoute: await server.app.inject({ method: "GET", url: "/nowhere" }),
      metrics: await server.app.inject({ method: "GET", url: "/metrics", headers: bearer }),
    };
    for (const [what, answer] of Object.entries(answers)) {
      expectSecurityHeaders(answer.headers, what);
      if (String(answer.headers["content-type"]).startsWith("application/json")) {
        expect(answer.headers["cache-control"], what).toBe("no-store");
      }
    }
    expect(answers.runs.statusCode).toBe(200);
    expect(answers.unauthorized.statusCode).toBe(401);
  });

  it("leave the event stream working, with its own Cache-Control, readable by a listed origin", async () => {
    server = await startInProcessServer({ corsOrigins: [listed] });
    const bearer = { authorization: `Bearer ${adminToken}` };
    const run = await server.app.inject({
      method: "POST",
      url: "/api/runs",
      headers: { ...bearer, "content-type": "application/json" },
      payload: JSON.stringify({ workflow }),
    });
    const runId = JSON.parse(run.body).run_id as string;
    const controller = new AbortController();
    const response = await fetch(new URL(`/api/runs/${runId}/events`, server.url), {
      headers: { ...bearer, origin: listed },
      signal: controller.signal,
    });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^text\/event-stream/);
    expect(response.headers.get("cache-control")).toBe("no-cache, no-transform");
    expect(response.headers.get("x-content-type-options")).toBe("nosniff");
    expect(response.headers.get("access-control-allow-origin")).toBe(listed);
    const reader = response.body?.getReader();
    const first = await reader?.read();
    expect(new TextDecoder().decode(first?.value)).toContain("retry:");
    controller.abort();
  });
});
