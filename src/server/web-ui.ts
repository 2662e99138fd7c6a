import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import fastifyStatic from "@fastify/static";
import type { FastifyInstance } from "fastify";

/**
 * The web UI (issue 11, `web/`): `npm run build` puts it in dist/web; the server answers `/` with
 * its index.html, `/ui/*` with its files and `/favicon.ico` with its icon. A CSP of its own lets the page run its own scripts
 * and call this origin's API, nothing else.
 */
const uiPolicy =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
  "font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/** dist/web beside dist/server (the built package), or the repo's dist/web when run from src/. */
function webRoot(): string | undefined {
  const candidates = ["../web", "../../dist/web"].map((relative) =>
    fileURLToPath(new URL(relative, import.meta.url)),
  );
  return candidates.find((dir) => existsSync(`${dir}/index.html`));
}

export async function webUiRoutes(app: FastifyInstance): Promise<void> {
  const root = webRoot();
  if (!root) {
    app.get("/", { schema: { hide: true } }, async (_request, reply) =>
      reply
        .code(404)
        .type("application/json")
        .send({
          error: {
            code: "NOT_FOUND",
            message: "the web UI is not built in this installation",
            hint: "Build it with `npm run build` (it puts the UI in dist/web); the API works without it.",
          },
        }),
    );
    return;
  }
  const index = readFileSync(`${root}/index.html`, "utf8");
  await app.register(fastifyStatic, {
    root,
    prefix: "/ui/",
    index: false,
    wildcard: true,
    // Ours below: @fastify/static's would replace it.
    cacheControl: false,
    // Hashed file names: a new build has new names, so the old ones may be kept for good.
    setHeaders: (res, path) => {
      res.setHeader("content-security-policy", uiPolicy);
      res.setHeader(
        "cache-control",
        path.includes("/assets/") ? "public, max-age=31536000, immutable" : "no-cache",
      );
    },
  });
  // Browsers ask for /favicon.ico on their own, without a token: the UI's icon, public.
  const favicon = existsSync(`${root}/favicon.ico`) ? readFileSync(`${root}/favicon.ico`) : undefined;
  if (favicon)
    app.get("/favicon.ico", { schema: { hide: true } }, async (_request, reply) =>
      reply.header("cache-control", "public, max-age=86400").type("image/x-icon").send(favicon),
    );
  app.get("/", { schema: { hide: true } }, async (_request, reply) =>
    reply
      .header("content-security-policy", uiPolicy)
      .header("cache-control", "no-cache")
      .type("text/html")
      .send(index),
  );
}
