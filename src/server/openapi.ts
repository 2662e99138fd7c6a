import type { FastifyDynamicSwaggerOptions } from "@fastify/swagger";
import type { FastifyInstance } from "fastify";
import {
  createJsonSchemaTransform,
  createJsonSchemaTransformObject,
  type ZodTypeProvider,
} from "fastify-type-provider-zod";
import { z } from "zod";
import { apiSchemas } from "./api-schemas.js";
import { errorResponses, jsonResponse } from "./error-responses.js";

type Security = { [scheme: string]: string[] }[];
/** `security` of a route anyone may call. */
export const publicRoute: Security = [];
/** `security` of the event stream: the header, or `?access_token=` for EventSource. */
export const bearerOrQueryToken: Security = [{ bearer: [] }, { accessToken: [] }];

/**
 * `@fastify/swagger` options: the routes registered after it describe themselves. Their zod
 * schemas (params, query, body, every response) validate requests, serialize responses and
 * make the document, so the document cannot drift from what the server does.
 */
export function openApiOptions(version: string): FastifyDynamicSwaggerOptions {
  const withComponents = createJsonSchemaTransformObject({ schemaRegistry: apiSchemas });
  return {
    openapi: {
      openapi: "3.1.0",
      info: {
        title: "runyard",
        version,
        description:
          "Self-hosted runner platform API. Errors are `{error: {code, message, hint}}`; `hint` says what to do.",
        license: { name: "MIT", identifier: "MIT" },
      },
      servers: [{ url: "/", description: "the server that serves this document" }],
      components: {
        securitySchemes: {
          bearer: {
            type: "http",
            scheme: "bearer",
            description:
              "A user or admin token: `Authorization: Bearer <token>`. `runyard up` prints the admin token.",
          },
          accessToken: {
            type: "apiKey",
            in: "query",
            name: "access_token",
            description:
              "The token in the URL, for EventSource, which cannot send headers. Accepted on the event stream only.",
          },
        },
      },
      security: [{ bearer: [] }],
      tags: [
        { name: "runs", description: "Submit, list, follow and cancel runs." },
        { name: "runners", description: "Runners and the tokens that connect them." },
        { name: "server", description: "Health, metrics and this document." },
      ],
    },
    transform: createJsonSchemaTransform({ schemaRegistry: apiSchemas }),
    // Every registered schema yields an input and an output component; keep the ones in use.
    transformObject: (document) => withNamedWildcards(withoutUnusedComponents(withComponents(document))),
  };
}

/** `GET /openapi.json`: the document, public like `/health`. */
export function openApiRoute(app: FastifyInstance): void {
  let document: Record<string, unknown> | undefined;
  app.withTypeProvider<ZodTypeProvider>().get(
    "/openapi.json",
    {
      schema: {
        operationId: "getOpenApi",
        summary: "This document",
        description: "The OpenAPI 3.1 description of this API; no token needed.",
        tags: ["server"],
        security: publicRoute,
        response: {
          200: jsonResponse("the OpenAPI document", z.record(z.string(), z.unknown())),
          ...errorResponses(),
        },
      },
    },
    async () => {
      document ??= { ...app.swagger() };
      return document;
    },
  );
}

interface ComponentsOf {
  paths?: unknown;
  components?: { schemas?: Record<string, unknown> };
}

/** Drops the components no operation refers to, directly or through another component. */
function withoutUnusedComponents<D extends ComponentsOf>(document: D): D {
  const schemas = document.components?.schemas;
  if (!schemas) return document;
  const used = new Set<string>();
  const visit = (value: unknown): void => {
    if (Array.isArray(value)) for (const item of value) visit(item);
    else if (value !== null && typeof value === "object") {
      for (const [key, child] of Object.entries(value)) {
        if (key === "$ref" && typeof child === "string") {
          const id = child.replace("#/components/schemas/", "");
          if (!used.has(id)) {
            used.add(id);
            visit(schemas[id]);
          }
        } else visit(child);
      }
    }
  };
  visit(document.paths);
  const kept = Object.fromEntries(Object.entries(schemas).filter(([id]) => used.has(id)));
  return { ...document, components: { ...document.components, schemas: kept } };
}

/**
 * A route ending in fastify's wildcard (`/api/bots/:name/hook/*`) is written `{*}` by the
 * generator, a parameter no OpenAPI tool accepts; it is `{path}` in the document, a parameter
 * that may hold slashes.
 */
function withNamedWildcards<D extends ComponentsOf>(document: D): D {
  if (document.paths === null || typeof document.paths !== "object") return document;
  const paths = Object.fromEntries(
    Object.entries(document.paths as Record<string, Record<string, unknown>>).map(([path, operations]) => {
      if (!path.includes("{*}")) return [path, operations];
      const renamed = Object.fromEntries(
        Object.entries(operations).map(([method, operation]) => {
          const parameters = (operation as { parameters?: { name: string; in: string }[] }).parameters;
          if (!parameters) return [method, operation];
          return [
            method,
            {
              ...(operation as object),
              parameters: parameters.map((p) =>
                p.in === "path" && p.name === "*" ? { ...p, name: "path" } : p,
              ),
            },
          ];
        }),
      );
      return [path.replace("{*}", "{path}"), renamed];
    }),
  );
  return { ...document, paths };
}
