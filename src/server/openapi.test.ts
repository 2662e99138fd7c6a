import { readFileSync, writeFileSync } from "node:fs";
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apiTypesFile, clientTypes } from "../../test/helpers/api-types.js";
import { makeToken, startInProcessServer } from "../../test/helpers/in-process.js";
import { runnerSocketPath } from "../core/protocol.js";
import type { RunningServer } from "./server.js";

interface Operation {
  operationId?: string;
  security?: Record<string, string[]>[];
  parameters?: { name: string; in: string; required?: boolean }[];
  requestBody?: { content: Record<string, { schema?: unknown }> };
  responses: Record<string, { content?: Record<string, { schema?: unknown }> }>;
}
interface Document {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, unknown>; securitySchemes: Record<string, unknown> };
  security: Record<string, string[]>[];
}

let server: RunningServer;
let document: Document;
/** Every route the app registered, as `METHOD /openapi/path`. */
const routes: string[] = [];

beforeAll(async () => {
  server = await startInProcessServer();
  document = (await server.app.inject({ method: "GET", url: "/openapi.json" })).json();
  // The web UI's page, files and icon (src/server/web-ui.ts: `/`, `/ui/*`, which Fastify's table
  // prints as `/*` under its prefix, `/favicon.ico`) are not API: hidden from the document.
  // Replicas passing a bot call to the one holding its runner (fleet/bot-relay.ts): not API either.
  const webUi = new Set(["GET /", "GET /*", "GET /ui/*", "GET /favicon.ico", "POST /api/fleet/bot-call"]);
  // The runner socket speaks the runner protocol (WebSocket, docs/runners.md), not the HTTP API.
  const runnerSocket = `GET ${runnerSocketPath}`;
  routes.push(...registeredRoutes(server.app).filter((route) => !webUi.has(route) && route !== runnerSocket));
});

afterAll(async () => {
  await server.close();
});

/**
 * Routes from Fastify's own table (`printRoutes`, one tree level per 4 columns), as
 * `METHOD /path/{param}`, without the HEAD twins of GET routes.
 */
function registeredRoutes(app: FastifyInstance): string[] {
  const found: string[] = [];
  const stack: string[] = [];
  for (const line of app.printRoutes({ commonPrefix: false }).split("\n")) {
    const match = /^([│├└─\s]*)(\S+)(?: \(([A-Z, ]+)\))?$/.exec(line);
    if (!match?.[2]) continue;
    const depth = (match[1] ?? "").length / 4 - 1;
    stack.length = depth;
    stack.push(match[2]);
    // printRoutes folds a static part ending in a wildcard (`/hook/*`) into its parent's line.
    const path = stack
      .join("")
      .replace(/:(\w+)/g, "{$1}")
      .replace(/^\/api\/bots\/\{name\}\*$/, "/api/bots/{name}/hook/{path}");
    for (const method of match[3]?.split(", ") ?? []) if (method !== "HEAD") found.push(`${method} ${path}`);
  }
  return found.sort();
}

const operations = (): [string, Operation][] =>
  Object.entries(document.paths).flatMap(([path, methods]) =>
    Object.entries(methods).map(([method, op]): [string, Operation] => [
      `${method.toUpperCase()} ${path}`,
      op,
    ]),
  );

describe("GET /openapi.json", () => {
  it("is public: no token needed", async () => {
    const response = await server.app.inject({ method: "GET", url: "/openapi.json" });
    expect(response.statusCode).toBe(200);
    expect(document.openapi).toBe("3.1.0");
  });

  it("describes every route the server registered, and no other", () => {
    expect(routes.length).toBeGreaterThanOrEqual(11);
    expect(
      operations()
        .map(([name]) => name)
        .sort(),
    ).toEqual(routes);
  });

  it("gives every operation an id, a typed 2xx body and a typed error body", () => {
    for (const [name, op] of operations()) {
      expect(op.operationId, name).toMatch(/^[a-z][A-Za-z]+$/);
      const success = Object.entries(op.responses).filter(([status]) => status.startsWith("2"));
      expect(success.length, name).toBeGreaterThan(0);
      const bodies = success.flatMap(([, response]) => Object.values(response.content ?? {}));
      expect(bodies.length, `${name} has a 2xx body`).toBeGreaterThan(0);
      for (const body of bodies) expect(body.schema, name).toBeDefined();
      expect(op.responses["500"]?.content?.["application/json"]?.schema, name).toEqual({
        $ref: "#/components/schemas/Error",
      });
    }
  });

  it("declares path parameters, and 401 and 403 on every route that needs a token", () => {
    for (const [name, op] of operations()) {
      for (const [, param] of name.matchAll(/\{(\w+)\}/g)) {
        expect(op.parameters, name).toContainEqual(
          expect.objectContaining({ name: param, in: "path", required: true }),
        );
      }
      const isPublic = op.security?.length === 0;
      expect(isPublic, name).toBe(
        [
          "GET /health",
          "GET /health/agents",
          "GET /health/ready",
          "GET /openapi.json",
          "POST /api/auth/login",
          // A webhook delivery: its signature, not a token, is the credential.
          "POST /api/hooks/{name}",
          "POST /api/forges/{id}/webhook",
          // A bot's inbound webhook: the bot's own secret is the credential.
          "POST /api/bots/{name}/hook/{path}",
        ].includes(name),
      );
      if (!isPublic) {
        expect(Object.keys(op.responses), name).toEqual(expect.arrayContaining(["401", "403"]));
      }
    }
  });

  it("names both auth schemes, and ?access_token= on the event stream and raw log only", () => {
    expect(document.components.securitySchemes).toEqual({
      bearer: expect.objectContaining({ type: "http", scheme: "bearer" }),
      accessToken: expect.objectContaining({ type: "apiKey", in: "query", name: "access_token" }),
    });
    expect(document.security).toEqual([{ bearer: [] }]);
    const withQueryToken = operations().filter(([, op]) => op.security?.some((s) => "accessToken" in s));
    expect(withQueryToken.map(([name]) => name).sort()).toEqual([
      "GET /api/runs/{id}/events",
      "GET /api/runs/{id}/log",
    ]);
    const events = document.paths["/api/runs/{id}/events"]?.get;
    expect(events?.responses["200"]?.content?.["text/event-stream"]?.schema).toEqual({
      $ref: "#/components/schemas/RunEvent",
    });
    expect(Object.keys(events?.responses ?? {})).toContain("204");
    // The token is a security scheme there, not a plain query parameter.
    expect(events?.parameters?.map((p) => p.name)).not.toContain("access_token");
  });

  it("types run records with the fields GET /api/runs/:id answers", async () => {
    const run = document.components.schemas.Run as {
      properties: Record<string, unknown>;
      required: string[];
    };
    expect(Object.keys(run.properties)).toEqual(
      expect.arrayContaining(["run_id", "status", "steps", "vars", "error", "waiting_for"]),
    );
    expect(run.required).not.toContain("waiting_for");
    expect(Object.keys(run.properties)).not.toContain("spec");
  });

  it("answers the same document to any caller, token or none", async () => {
    const user = await makeToken(server, "user", { tenant_id: "acme" });
    const withToken = await server.app.inject({
      method: "GET",
      url: "/openapi.json",
      headers: { authorization: `Bearer ${user}` },
    });
    expect(withToken.json()).toEqual(document);
  });
});

describe("the generated client types (src/client/api-types.ts)", () => {
  it("are what openapi-typescript makes of the live document", async () => {
    const fresh = await clientTypes(document);
    if (process.env.UPDATE_API_TYPES === "1") writeFileSync(apiTypesFile, fresh);
    const committed = readFileSync(apiTypesFile, "utf8");
    expect(committed, "stale: run `npm run api:types`").toBe(fresh);
  }, 30_000);
});
