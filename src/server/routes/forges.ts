import { createHash, randomBytes } from "node:crypto";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { agentNames } from "../../agents/registry.js";
import { RunyardError } from "../../core/errors.js";
import { newId } from "../../core/ids.js";
import type { ForgeRecord } from "../../store/index.js";
import { apiSchemas, refuseBodyFields } from "../api-schemas.js";
import { audit } from "../audit.js";
import { callerOf, isPlatformAdmin, submitterId, tenantScope } from "../auth.js";
import type { ServerDeps } from "../deps.js";
import { errorResponses, protectedErrorResponses } from "../error-responses.js";
import { forgeKinds } from "../forges/forge-clients.js";
import { actOnDelivery, unknownForge } from "../forges/forge-deliveries.js";
import { signatureHeader, signatureMatches } from "../hooks/hook-signature.js";
import { publicRoute } from "../openapi.js";

const maxDeliveryBytes = 2 * 1024 * 1024;
const deliveryIdPattern = /^[\x21-\x7e]{1,200}$/;
/** What a delivery to an id with no forge is checked against: random, held by nobody. */
const unknownForgeSecret = randomBytes(32).toString("hex");

const defaultApiUrl = "https://api.github.com";

const ForgeParams = z.object({ id: z.string().min(1).describe("the forge's id") });

const CreateForgeBody = z.strictObject({
  kind: z.enum(forgeKinds).describe("the forge: github (github.com or a GitHub Enterprise server)"),
  repo: z
    .string()
    .regex(/^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/, "repo must be OWNER/NAME, like acme/app")
    .describe("OWNER/NAME"),
  api_url: z.string().url().default(defaultApiUrl).describe("the REST API's base URL"),
  token: z
    .string()
    .min(1)
    .describe(
      "a token that may read the repo, push branches, open pull requests and comment (Contents, Pull requests, Issues: read-write); stored sealed",
    ),
  label: z.string().min(1).max(50).default("runyard").describe("the issue label that starts a task"),
  agent: z.enum(agentNames).default("claude_code").describe("the agent tasks run with"),
  test: z
    .string()
    .min(1)
    .optional()
    .describe("a shell command run after the agent; failing it fails the task"),
  sandbox_image: z
    .string()
    .min(1)
    .optional()
    .describe("run the agent in a hardened container of this image (on runners with docker)"),
  model: z.string().min(1).optional(),
  timeout_secs: z.number().int().positive().max(86_400).optional(),
  group: z.string().min(1).optional().describe("runner group; else the server's repo routing"),
});

const ForgeView = z.object({
  id: z.string(),
  tenant_id: z.string().nullable(),
  kind: z.string(),
  repo: z.string(),
  api_url: z.string(),
  label: z.string(),
  agent: z.string(),
  settings: z.object({
    test: z.string().optional(),
    sandbox_image: z.string().optional(),
    model: z.string().optional(),
    timeout_secs: z.number().optional(),
    group: z.string().optional(),
  }),
  webhook_url: z.string().describe("this server's path the repo's webhook delivers to"),
  created_at: z.string(),
  created_by: z.string().nullable(),
});
apiSchemas.add(ForgeView, { id: "Forge" });
const ForgeCreated = ForgeView.extend({
  webhook_secret: z
    .string()
    .describe("the webhook's secret, answered this once: paste it into the repo's webhook"),
});

const webhookPath = (id: string) => `/api/forges/${encodeURIComponent(id)}/webhook`;
const view = (forge: ForgeRecord) => ({ ...forge, webhook_url: webhookPath(forge.id) });

/**
 * Code forges whose issues start agent tasks (docs/forges.md): a tenant's members add a repo with
 * its token; the repo's webhook delivers to `/api/forges/ID/webhook`, signed with the secret
 * answered once. Another tenant's forge is 404, as one that does not exist.
 */
export function forgeRoutes(app: FastifyInstance, deps: ServerDeps): void {
  const api = app.withTypeProvider<ZodTypeProvider>();

  api.post(
    "/api/forges",
    {
      schema: {
        operationId: "addForge",
        summary: "Add a forge repo whose labelled issues and /runyard comments start agent tasks",
        description:
          "The token is stored sealed, as is the generated webhook secret, answered once. The server calls the forge's API for each delivery (permissions, pull requests, comments): an API other than https://api.github.com (a GitHub Enterprise server) may be named by a platform admin only, as members may not point the server at addresses of its own network.",
        tags: ["forges"],
        body: CreateForgeBody,
        response: {
          201: { description: "the forge", content: { "application/json": { schema: ForgeCreated } } },
          ...protectedErrorResponses(400, 403),
        },
      },
    },
    async (request, reply) => {
      const principal = callerOf(request);
      const body = request.body;
      if (body.api_url !== defaultApiUrl && !isPlatformAdmin(principal)) {
        throw new RunyardError("FORBIDDEN", `only a platform admin may add a forge on ${body.api_url}`, {
          hint: `The server calls a forge's API for every delivery: members' forges use ${defaultApiUrl}; ask a platform admin to add one on a GitHub Enterprise server.`,
        });
      }
      const id = newId("frg");
      const webhookSecret = randomBytes(32).toString("hex");
      const forge = await deps.store.forges.create({
        id,
        tenant_id: principal.tenant_id,
        kind: body.kind,
        repo: body.repo,
        api_url: body.api_url,
        label: body.label,
        agent: body.agent,
        settings: {
          ...(body.test ? { test: body.test } : {}),
          ...(body.sandbox_image ? { sandbox_image: body.sandbox_image } : {}),
          ...(body.model ? { model: body.model } : {}),
          ...(body.timeout_secs ? { timeout_secs: body.timeout_secs } : {}),
          ...(body.group ? { group: body.group } : {}),
        },
        created_by: submitterId(principal),
        token: body.token,
        webhook_secret: webhookSecret,
      });
      await audit(deps, request, {
        action: "forge.add",
        target: id,
        tenant_id: forge.tenant_id,
        details: { kind: body.kind, repo: body.repo, api_url: body.api_url },
      });
      return reply.code(201).send({ ...view(forge), webhook_secret: webhookSecret });
    },
  );

  api.get(
    "/api/forges",
    {
      schema: {
        operationId: "listForges",
        summary: "The forges of the caller's tenant",
        description: "A platform admin sees every tenant's. Never a token or secret.",
        tags: ["forges"],
        response: {
          200: {
            description: "the forges",
            content: { "application/json": { schema: z.object({ forges: z.array(ForgeView) }) } },
          },
          ...protectedErrorResponses(),
        },
      },
    },
    async (request) => ({ forges: (await deps.store.forges.list(tenantScope(request))).map(view) }),
  );

  api.delete(
    "/api/forges/:id",
    {
      preValidation: refuseBodyFields,
      schema: {
        operationId: "removeForge",
        summary: "Remove a forge",
        description:
          "Its webhook deliveries are refused from then on; runs it started stay. Another tenant's is 404.",
        tags: ["forges"],
        params: ForgeParams,
        response: {
          200: {
            description: "the forge is gone",
            content: {
              "application/json": { schema: z.object({ id: z.string(), removed: z.literal(true) }) },
            },
          },
          ...protectedErrorResponses(404),
        },
      },
    },
    async (request) => {
      const forge = await deps.store.forges.get(request.params.id);
      const scope = tenantScope(request);
      if (!forge || (scope !== undefined && forge.tenant_id !== scope)) {
        throw new RunyardError("NOT_FOUND", `no forge ${request.params.id}`, {
          hint: "`runyard forge list` shows the forges of your tenant.",
        });
      }
      await deps.store.forges.remove(forge.id);
      await audit(deps, request, { action: "forge.rm", target: forge.id, tenant_id: forge.tenant_id });
      return { id: forge.id, removed: true as const };
    },
  );

  app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser(
      "*",
      { parseAs: "buffer", bodyLimit: maxDeliveryBytes },
      (_request, body, done) => done(null, body),
    );
    scope.withTypeProvider<ZodTypeProvider>().post(
      "/api/forges/:id/webhook",
      {
        bodyLimit: maxDeliveryBytes,
        schema: {
          operationId: "deliverForgeWebhook",
          summary: "A forge's webhook delivery (no token: the signature is the credential)",
          description:
            "Signed as GitHub signs (`X-Hub-Signature-256`). A missing or wrong signature, and an id with no forge, are the same 401. `X-GitHub-Delivery` names the delivery: the same id, or the same body under another id, starts nothing once the first was acted on. A delivery that reached no decision (the forge's API failed, the quota refused, the run could not be stored) is answered with that error (5xx, or 429) and kept for nothing: its redelivery is acted on. `ping` is answered. A labelled issue or a `/runyard` comment of someone who may push starts an agent task; a comment on its pull request continues it.",
          tags: ["forges"],
          security: publicRoute,
          params: ForgeParams,
          consumes: ["application/json"],
          body: z.unknown().describe("the forge's JSON, as signed"),
          response: {
            202: {
              description: "what became of the delivery",
              content: {
                "application/json": {
                  schema: z.object({
                    outcome: z.enum(["started", "ignored", "refused", "duplicate", "pong"]),
                    note: z.string(),
                    run_id: z.string().nullable(),
                  }),
                },
              },
            },
            ...errorResponses(400, 401, 413, 429, 500),
          },
        },
      },
      async (request, reply) => {
        const secrets = await deps.store.forges.secrets(request.params.id);
        const secret = secrets?.webhook_secret ?? unknownForgeSecret;
        const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
        const header = request.headers[signatureHeader];
        const forge = secrets ? await deps.store.forges.get(request.params.id) : undefined;
        if (!signatureMatches(secret, raw, typeof header === "string" ? header : undefined) || !forge) {
          throw unknownForge();
        }
        const event = String(request.headers["x-github-event"] ?? "");
        if (event === "ping")
          return reply.code(202).send({ outcome: "pong", note: "the signature matches", run_id: null });
        const delivery = request.headers["x-github-delivery"];
        if (typeof delivery !== "string" || !deliveryIdPattern.test(delivery)) {
          throw new RunyardError("INVALID_INPUT", "X-GitHub-Delivery must be 1 to 200 printable characters", {
            hint: "Forges send a unique id per delivery (GitHub: a UUID); runyard acts on each id once.",
          });
        }
        let payload: unknown;
        try {
          payload = JSON.parse(raw.toString("utf8"));
        } catch {
          throw new RunyardError("INVALID_INPUT", "the delivery's body is not JSON", {
            hint: "Set the repo webhook's content type to application/json.",
          });
        }
        const bodyDigest = createHash("sha256").update(raw).digest("hex");
        const outcome = await actOnDelivery(deps, forge, { id: delivery, event, payload, bodyDigest });
        return reply.code(202).send(outcome);
      },
    );
  });
}
