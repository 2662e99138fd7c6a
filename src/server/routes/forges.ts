import { createHash, randomBytes } from "node:crypto";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { agentNames } from "../../agents/registry.js";
import { RunyardError } from "../../core/errors.js";
import { newId } from "../../core/ids.js";
import { type ForgeKind, forgeKindOf, forgeKinds } from "../../forges/registry.js";
import type { ForgeRecord } from "../../store/index.js";
import { forgeName, makerRemoved } from "../acting-for.js";
import { apiSchemas, maxNameLength, refuseBodyFields } from "../api-schemas.js";
import { audit } from "../audit.js";
import { callerOf, isPlatformAdmin, submitterId, tenantScope } from "../auth.js";
import type { ServerDeps } from "../deps.js";
import {
  errorResponses,
  jsonResponse,
  protectedErrorResponses,
  protectedResponses,
} from "../error-responses.js";
import { actOnDelivery, unknownForge } from "../forges/forge-deliveries.js";
import { readForgeDelivery } from "../forges/forge-webhooks.js";
import { publicRoute } from "../openapi.js";
import { deliveryJson, rawBodyScope, unheldSecret } from "./raw-body.js";

const maxDeliveryBytes = 2 * 1024 * 1024;
const deliveryIdPattern = /^[\x21-\x7e]{1,200}$/;

/** Each kind's public service, which members may add repos of; another API is a platform admin's. */
const defaultApiUrls: Record<ForgeKind, string> = {
  github: "https://api.github.com",
  gitlab: "https://gitlab.com/api/v4",
  gitea: "https://codeberg.org/api/v1",
};
/** Where each kind's REST API lives on its server, added to an instance's URL given without it. */
const apiPaths: Partial<Record<ForgeKind, string>> = { gitlab: "/api/v4", gitea: "/api/v1" };

/** The REST API's base URL of `kind` from what was given: a GitLab or Gitea instance's URL gets its API path. */
function apiUrlOf(kind: ForgeKind, given: string | undefined): string {
  if (given === undefined) return defaultApiUrls[kind];
  const url = given.replace(/\/+$/, "");
  const path = apiPaths[kind];
  return path && !url.endsWith(path) ? `${url}${path}` : url;
}

const kindMessage = `kind must be one of ${forgeKinds.join(", ")} (Forgejo speaks Gitea's API: gitea)`;

const ForgeParams = z.object({ id: z.string().min(1).describe("the forge's id") });

const CreateForgeBody = z.strictObject({
  kind: z
    .enum(forgeKinds, { message: kindMessage })
    .describe(
      "the forge: github (github.com or a GitHub Enterprise server), gitlab (gitlab.com or a self-managed GitLab), gitea (a Gitea or Forgejo server, codeberg.org by default)",
    ),
  repo: z
    .string()
    .max(300)
    .regex(
      /^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)+$/,
      "repo must be OWNER/NAME, like acme/app (on GitLab GROUP/SUBGROUP/NAME too)",
    )
    .describe("OWNER/NAME (on GitLab, the project's full path: GROUP/NAME or GROUP/SUBGROUP/NAME)"),
  api_url: z
    .string()
    .max(2048)
    .url()
    .optional()
    .describe(
      "the REST API's base URL; by default https://api.github.com, https://gitlab.com/api/v4 or https://codeberg.org/api/v1 by kind. A GitLab or Gitea server's own URL is taken too (its /api/v4 or /api/v1 is added)",
    ),
  token: z
    .string()
    .min(1)
    .max(4096)
    .describe(
      "a token that may read the repo, push branches, open pull requests and comment (Contents, Pull requests, Issues: read-write); stored sealed",
    ),
  label: z.string().min(1).max(50).default("runyard").describe("the issue label that starts a task"),
  agent: z.enum(agentNames).default("claude_code").describe("the agent tasks run with"),
  test: z
    .string()
    .min(1)
    .max(16_384)
    .optional()
    .describe("a shell command run after the agent; failing it fails the task"),
  sandbox_image: z
    .string()
    .min(1)
    .max(maxNameLength)
    .optional()
    .describe("run the agent in a hardened container of this image (on runners with docker)"),
  model: z.string().min(1).max(maxNameLength).optional(),
  timeout_secs: z.number().int().positive().max(86_400).optional(),
  group: z
    .string()
    .min(1)
    .max(maxNameLength)
    .optional()
    .describe("runner group; else the server's repo routing"),
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
          "The token is stored sealed, as is the generated webhook secret, answered once. The server calls the forge's API for each delivery (permissions, pull requests or merge requests, comments): an API other than the kind's public service (https://api.github.com, https://gitlab.com/api/v4, https://codeberg.org/api/v1), such as a GitHub Enterprise, self-managed GitLab or Gitea server, may be named by a platform admin only, as members may not point the server at addresses of its own network.",
        tags: ["forges"],
        body: CreateForgeBody,
        response: protectedResponses(201, "the forge", ForgeCreated, 400, 403),
      },
    },
    async (request, reply) => {
      const principal = callerOf(request);
      const body = request.body;
      if (body.repo.split("/").some((part) => /^\.+$/.test(part))) {
        throw new RunyardError("INVALID_INPUT", `repo ${body.repo} has a part of dots only`, {
          hint: "Give the repo's owner and name as the forge shows them, like acme/app: the server calls the forge's API on that path.",
        });
      }
      if (body.kind !== "gitlab" && body.repo.split("/").length !== 2) {
        throw new RunyardError("INVALID_INPUT", `repo must be OWNER/NAME on ${body.kind}, not ${body.repo}`, {
          hint: "Only GitLab nests projects in subgroups; give the repo's owner and name, like acme/app.",
        });
      }
      const apiUrl = apiUrlOf(body.kind, body.api_url);
      if (apiUrl !== defaultApiUrls[body.kind] && !isPlatformAdmin(principal)) {
        throw new RunyardError("FORBIDDEN", `only a platform admin may add a forge on ${apiUrl}`, {
          hint: `The server calls a forge's API for every delivery: members' ${body.kind} forges use ${defaultApiUrls[body.kind]}; ask a platform admin to add one on your own server.`,
        });
      }
      const id = newId("frg");
      const webhookSecret = randomBytes(32).toString("hex");
      const forge = await deps.store.forges.create({
        id,
        tenant_id: principal.tenant_id,
        kind: body.kind,
        repo: body.repo,
        api_url: apiUrl,
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
        details: { kind: body.kind, repo: body.repo, api_url: apiUrl },
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
        response: protectedResponses(200, "the forges", z.object({ forges: z.array(ForgeView) })),
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
          200: jsonResponse("the forge is gone", z.object({ id: z.string(), removed: z.literal(true) })),
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

  rawBodyScope(app, maxDeliveryBytes, (scope) =>
    scope.withTypeProvider<ZodTypeProvider>().post(
      "/api/forges/:id/webhook",
      {
        bodyLimit: maxDeliveryBytes,
        schema: {
          operationId: "deliverForgeWebhook",
          summary: "A forge's webhook delivery (no token: the signature is the credential)",
          description:
            "Checked as each forge signs: GitHub's `X-Hub-Signature-256`, Gitea's and Forgejo's `X-Gitea-Signature` (the HMAC-SHA256 of the raw body in hex), GitLab's `X-Gitlab-Token` (the secret, compared in constant time). A missing or wrong signature or token, and an id with no forge, are the same 401. `X-GitHub-Delivery`, `X-Gitea-Delivery` or GitLab's `Idempotency-Key` (else `X-Gitlab-Event-UUID`, `X-Gitlab-Webhook-UUID`) names the delivery: the same id, or the same body under another id, starts nothing once the first was acted on. A delivery that reached no decision (the forge's API failed, the quota refused, the run could not be stored) is answered with that error (5xx, or 429) and kept for nothing: its redelivery is acted on. `ping` is answered. A labelled issue or a `/runyard` comment of someone who may push starts an agent task; a comment on its pull request (merge request) continues it.",
          tags: ["forges"],
          security: publicRoute,
          params: ForgeParams,
          consumes: ["application/json"],
          body: z.unknown().describe("the forge's JSON, as signed"),
          response: {
            202: jsonResponse(
              "what became of the delivery",
              z.object({
                outcome: z.enum(["started", "ignored", "refused", "duplicate", "pong"]),
                note: z.string(),
                run_id: z.string().nullable(),
              }),
            ),
            ...errorResponses(400, 401, 410, 413, 429, 500),
          },
        },
      },
      async (request, reply) => {
        const secrets = await deps.store.forges.secrets(request.params.id);
        const secret = secrets?.webhook_secret ?? unheldSecret;
        const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
        const forge = secrets ? await deps.store.forges.get(request.params.id) : undefined;
        // An id with no forge is checked as a GitHub delivery against a secret nobody holds.
        const received = readForgeDelivery(
          forge ? forgeKindOf(forge) : "github",
          secret,
          raw,
          request.headers,
        );
        if (!received.signed || !forge) throw unknownForge();
        // Signed by the secret's holder from here on: it may learn that the forge is dead. Its
        // runs would be nobody's, held to no user's quota or budget, as a removed user's hook's.
        if (await makerRemoved(deps.store, forge.created_by)) {
          throw new RunyardError(
            "TRIGGER_OWNER_REMOVED",
            `forge ${forgeName(forge)} was added by a user who has since been removed: its deliveries start no run`,
            {
              hint: `A tenant admin adds the forge again (\`runyard forge rm ${forge.id}\`, then \`runyard forge add ${forge.kind} --repo ${forge.repo} ...\`) and gives the repo's webhook its new URL and secret.`,
            },
          );
        }
        const { event } = received;
        if (received.ping)
          return reply.code(202).send({ outcome: "pong", note: "the signature matches", run_id: null });
        const delivery = received.deliveryId;
        if (typeof delivery !== "string" || !deliveryIdPattern.test(delivery)) {
          throw new RunyardError(
            "INVALID_INPUT",
            `${received.deliveryHeader} must be 1 to 200 printable characters`,
            { hint: "Forges send a unique id per delivery (a UUID); runyard acts on each id once." },
          );
        }
        const payload = deliveryJson(
          raw,
          "Set the repo webhook's content type to application/json (GitLab sends JSON always; Gitea: POST Content Type application/json).",
        );
        const bodyDigest = createHash("sha256").update(raw).digest("hex");
        const outcome = await actOnDelivery(deps, forge, { id: delivery, event, payload, bodyDigest });
        return reply.code(202).send(outcome);
      },
    ),
  );
}
