import { createHash } from "node:crypto";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { RunyardError } from "../../core/errors.js";
import { newRunId } from "../../core/ids.js";
import type { HookRecord } from "../../store/index.js";
import type { InputSpec } from "../../workflow/model.js";
import { inputPrefix, inputValueProblem } from "../../workflow/parse-inputs.js";
import { makerRemoved, triggerQuotaPrincipal } from "../acting-for.js";
import type { ServerDeps } from "../deps.js";
import { errorResponses, jsonResponse } from "../error-responses.js";
import { signatureHeader, signatureMatches } from "../hooks/hook-signature.js";
import { parseJsonPath, pickJsonPath } from "../hooks/json-path.js";
import { publicRoute } from "../openapi.js";
import { deliveryJson, rawBodyScope, unheldSecret } from "./raw-body.js";

/** The largest delivery body: a push of many commits is well under it. */
export const maxHookBodyBytes = 2 * 1024 * 1024;
/**
 * The header naming a delivery (GitHub's); the same id delivered again starts no second run, nor
 * does the same body under another id or none (only the body is signed).
 */
const deliveryHeader = "x-github-delivery";
const eventHeader = "x-github-event";
const deliveryId = /^[\x21-\x7e]{1,200}$/;
/** How long a delivery sent again waits for the run its first sending is starting. */
const replayWaitMs = 5000;

/**
 * `name`, as the other routes of `/api/hooks/{name}` call the place (OpenAPI takes one template
 * per path), but what it holds is the end of the hook's `url`: its id.
 */
const DeliveryParams = z.object({
  name: z
    .string()
    .min(1)
    .max(200)
    .describe("the end of the hook's `url`: its id (for a hook made when names were global: its name)"),
});
const DeliveryHeaders = z.looseObject({
  "x-hub-signature-256": z
    .string()
    .optional()
    .describe("`sha256=` and the HMAC-SHA256 of the raw body under the hook's secret, in hex"),
  "x-github-delivery": z
    .string()
    .optional()
    .describe("the delivery's id: the same id, or the same body under any id, starts no second run"),
  "x-github-event": z.string().optional().describe("`ping` is answered and starts no run"),
});
const RunStarted = z.object({
  run_id: z.string(),
  missing_vars: z
    .array(z.string())
    .describe("inputs whose path the body does not have: the run got their default"),
});
const NoNewRun = z.object({
  run_id: z
    .string()
    .nullable()
    .describe("the run a delivery sent again started the first time; null for a ping"),
  note: z.string(),
});

/**
 * The inputs a delivery's body gives, each checked against its declaration (type, length), and
 * those whose path it does not have (the declared default). A hook made before inputs were
 * declared, filling a name its workflow does not declare, is refused with the fix.
 */
function pickInputs(
  hook: HookRecord,
  inputs: Record<string, InputSpec>,
  body: unknown,
): { vars: Record<string, string>; missing: string[] } {
  const vars: Record<string, string> = {};
  const missing: string[] = [];
  for (const [name, path] of Object.entries(hook.vars)) {
    const input = inputs[name];
    if (!input) {
      throw new RunyardError(
        "INVALID_INPUT",
        `hook ${hook.name} fills ${name}, which saved workflow ${hook.workflow} does not declare in its inputs:; nothing was started`,
        {
          hint: `A delivery's values reach steps only as declared inputs named ${inputPrefix}...: declare inputs: {${inputPrefix}${name.replace(/^HOOK_/, "")}: {type: string}} in ${hook.workflow} and read that variable, then make the hook again (runyard hook rm ${hook.name}; runyard hook create ${hook.name} --workflow ${hook.workflow} --var '${inputPrefix}${name.replace(/^HOOK_/, "")}=${path}').`,
        },
      );
    }
    const value = pickJsonPath(body, parseJsonPath(path));
    if (value === undefined) {
      missing.push(name);
      vars[name] = input.default;
      continue;
    }
    const problem = inputValueProblem(input, value);
    if (problem) {
      throw new RunyardError("INVALID_INPUT", `${path} (for input ${name}) ${problem}`, {
        hint: `${name} is declared as ${input.type}${input.type === "string" ? ` of at most ${input.maxLength} characters` : ""}: pick a field that fits, or change its declaration in inputs:; nothing was started.`,
      });
    }
    vars[name] = value;
  }
  return { vars, missing };
}

/**
 * `POST /api/hooks/ID`: no token, the signature is the credential. Nothing is read from the body,
 * and nothing stored, before its signature matches the raw bytes; then it is parsed as JSON, the
 * hook's variables are picked from it, and the hook's saved workflow is queued as a `webhook` run.
 */
export function hookDeliveryRoute(app: FastifyInstance, deps: ServerDeps): void {
  rawBodyScope(app, maxHookBodyBytes, (scope) =>
    scope.withTypeProvider<ZodTypeProvider>().post(
      "/api/hooks/:name",
      {
        bodyLimit: maxHookBodyBytes,
        schema: {
          operationId: "deliverHook",
          summary: "Deliver a signed webhook (no token: the signature is the credential)",
          description: `The body (JSON, up to ${maxHookBodyBytes / 1024 / 1024} MiB) must be signed as GitHub signs it: \`X-Hub-Signature-256: sha256=<HMAC-SHA256 of the raw body under the hook's secret, hex>\`. A missing or wrong signature is 401 and stores nothing; so is a delivery to an id that has no hook (the answer does not tell which ids exist). The id is the end of the hook's \`url\`: random for hooks made now, the name for hooks made when names were unique across the server. \`X-GitHub-Delivery\` names the delivery: the same id again starts no second run and answers the first one's run (200). Only the body is signed, so a delivery is known by its body too: the same body again, under another id or none, is the same delivery sent again (200, the first run); a sender that means two runs sends two bodies (GitHub's always differ; put an id or a timestamp in your own). \`X-GitHub-Event: ping\` is answered 200 and starts no run. A hook whose maker (a user) was removed since answers 410 \`TRIGGER_OWNER_REMOVED\` to every signed delivery, a ping too: a tenant admin makes it again. Otherwise the hook's saved workflow (its live version) is queued at once (202), with the hook's inputs picked from the body: each must fit its declaration in the workflow's \`inputs:\` (type, max_length; 400 and nothing started otherwise), and a path the body lacks gives the input's default, listed in \`missing_vars\`. The run's trigger is \`webhook\`.`,
          tags: ["hooks"],
          security: publicRoute,
          params: DeliveryParams,
          headers: DeliveryHeaders,
          consumes: ["application/json"],
          body: z.unknown().describe("the sender's JSON, as signed"),
          response: {
            202: jsonResponse("the run is queued", RunStarted),
            200: jsonResponse(
              "a delivery sent again (its id or its body came before: its first run), or a ping: no new run",
              NoNewRun,
            ),
            ...errorResponses(400, 401, 404, 409, 410, 413, 429),
          },
        },
      },
      async (request, reply) => {
        const id = request.params.name;
        // An id with no hook is checked against a secret nobody holds and refused as a bad
        // signature is, in the same time: the answer never tells an outsider which ids exist.
        const secret = (await deps.store.hooks.secret(id)) ?? unheldSecret;
        const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
        const header = request.headers[signatureHeader];
        const matches = signatureMatches(secret, raw, typeof header === "string" ? header : undefined);
        if (!matches || secret === unheldSecret) {
          throw new RunyardError(
            "UNAUTHORIZED",
            header === undefined
              ? `the delivery has no ${signatureHeader} header`
              : `the delivery's ${signatureHeader} does not match its body`,
            {
              hint: 'Check that the URL is the hook\'s url (`runyard hook list`), and sign the raw body with its secret: X-Hub-Signature-256: sha256=<hex HMAC-SHA256>, e.g. `openssl dgst -sha256 -hmac "$SECRET"` over the exact bytes sent.',
            },
          );
        }
        // Signed by the secret's holder from here on: it may learn that the hook is dead.
        const maker = await deps.store.hooks.byId(id);
        if (maker && (await makerRemoved(deps.store, maker.created_by))) {
          throw new RunyardError(
            "TRIGGER_OWNER_REMOVED",
            `hook ${maker.name} was made by a user who has since been removed: its deliveries start no run`,
            {
              hint: `A tenant admin makes the hook again (\`runyard hook rm ${maker.name}\`, then \`runyard hook create ${maker.name} --workflow ${maker.workflow} ...\`) and gives the sender its new URL and secret.`,
            },
          );
        }
        if (request.headers[eventHeader] === "ping") {
          return reply
            .code(200)
            .send({ run_id: null, note: "pong: the signature matches; a ping starts no run" });
        }
        const delivery = request.headers[deliveryHeader];
        if (delivery !== undefined && (typeof delivery !== "string" || !deliveryId.test(delivery))) {
          throw new RunyardError("INVALID_INPUT", `${deliveryHeader} must be 1 to 200 printable characters`, {
            hint: "Send a unique id per delivery (GitHub sends a UUID), or leave the header out.",
          });
        }
        const body = deliveryJson(raw, "Send JSON (on GitHub: the webhook's content type application/json).");
        const hook = await deps.store.hooks.byId(id);
        if (!hook) throw new RunyardError("NOT_FOUND", "the hook was removed");
        // The version promoted for the name's triggers, not merely the newest: a newer one saved by
        // someone who may not act for this hook waits until its owner or an admin promotes it.
        const { saved, inputs } = await deps.savedWorkflows.liveInputs(hook.tenant_id, hook.workflow);
        const { vars, missing } = pickInputs(hook, inputs, body);
        // The hook's tenant's limits, and its maker's own: the run will be theirs.
        await deps.quotas.checkSubmit(
          await triggerQuotaPrincipal(deps.store, hook.tenant_id, hook.created_by),
        );
        const owner = await deps.savedWorkflows.triggerOwner(hook.created_by);
        const runId = newRunId();
        // A caller's `traceparent` (tracing on): the run joins the sender's trace.
        deps.tracing?.runIdFor(request, newRunId, runId);
        // The signature covers the body only, not the headers: the same body again, under another
        // delivery id or none, is the same delivery sent again (by whoever saw it once), and is
        // known by its SHA-256. Each key is claimed by its primary key, so of two sendings at
        // once, on any replica, one starts the run.
        const bodyKey = `sha256:${createHash("sha256").update(raw).digest("hex")}`;
        const claimed: string[] = [];
        for (const key of delivery === undefined || delivery === bodyKey ? [bodyKey] : [delivery, bodyKey]) {
          const recorded = await deps.store.hooks.recordDelivery({
            hook_id: hook.id,
            delivery_id: key,
            run_id: runId,
          });
          if (!recorded.first) {
            for (const mine of claimed) await deps.store.hooks.forgetDelivery(hook.id, mine);
            const what = key === bodyKey ? "this body" : `delivery ${key}`;
            return reply.code(200).send(await earlierRun(deps, what, recorded.delivery.run_id));
          }
          claimed.push(key);
        }
        try {
          const run = await deps.savedWorkflows.startRun({
            tenantId: hook.tenant_id,
            name: saved.name,
            version: saved.version,
            vars,
            trigger: "webhook",
            ref: hook.name,
            runId,
            owner,
          });
          deps.tracing?.submitted(run.id, request, reply.code(202));
          return reply.code(202).send({ run_id: run.id, missing_vars: missing });
        } catch (error) {
          // Not started: the sender may deliver it again.
          for (const mine of claimed) await deps.store.hooks.forgetDelivery(hook.id, mine);
          throw error;
        }
      },
    ),
  );
}

/**
 * The answer to a delivery sent again (`what`: "delivery ID", or "this body" when its body came
 * before): the run its first sending started, once that is stored.
 */
async function earlierRun(deps: ServerDeps, what: string, runId: string) {
  const deadline = Date.now() + replayWaitMs;
  for (;;) {
    if (await deps.store.runs.get(runId)) {
      const note = `${what} was received before: this is the run it started`;
      if (what !== "this body") return { run_id: runId, note };
      return {
        run_id: runId,
        note: `${note}. Only the body is signed, so the same body again, under any delivery id or none, is a replay; to start another run, send a body of its own (an id or a timestamp in it).`,
      };
    }
    if (Date.now() >= deadline) {
      throw new RunyardError("CONFLICT", `${what} is still being started`, {
        hint: "Deliver it again in a few seconds: it then answers the run it started.",
      });
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
