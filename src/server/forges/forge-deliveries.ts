import { RunyardError } from "../../core/errors.js";
import { forgeClient, forgeIntent } from "../../forges/registry.js";
import { type ForgeIntent, mayStartWork } from "../../forges/types.js";
import type { ForgeRecord } from "../../store/index.js";
import { triggerQuotaPrincipal } from "../acting-for.js";
import type { ServerDeps } from "../deps.js";
import { maxPromptLength } from "../runs/agent-spec.js";
import type { RunOwner } from "../runs/run-origin.js";

/** What became of a delivery whose signature matched. */
export interface DeliveryOutcome {
  outcome: "started" | "ignored" | "refused" | "duplicate";
  note: string;
  run_id: string | null;
}

/**
 * Acts on a signed delivery of `forge`, once per delivery id, only for someone who may push to the repo
 * (asked of the forge). An issue starts an agent task on the repo; a comment on a pull request runyard
 * opened continues that task's session on its branch. A comment's text is the agent's instruction only.
 *
 * Its id and body are claimed first (each a primary key: two sendings at once, on any replica, act
 * once). One that reaches no decision (the forge's API failed, the quota refused, the run could not be
 * stored) is forgotten and its error thrown, so the forge shows it failed and a redelivery is acted on.
 */
export async function actOnDelivery(
  deps: Pick<ServerDeps, "store" | "runs" | "quotas">,
  forge: ForgeRecord,
  delivery: { id: string; event: string; payload: unknown; bodyDigest: string },
): Promise<DeliveryOutcome> {
  // The signature covers the body only: under another delivery id it is a replay by whoever saw it once.
  // Two events a forge sends never share a body (a comment's id, an issue's updated_at differ).
  const bodyKey = `sha256:${delivery.bodyDigest}`;
  const claimed: string[] = [];
  for (const key of [delivery.id, bodyKey]) {
    const recorded = await deps.store.forges.recordDelivery({
      forge_id: forge.id,
      delivery_id: key,
      event: delivery.event,
    });
    if (!recorded.first) {
      if (key === bodyKey) {
        await deps.store.forges.settleDelivery(
          forge.id,
          delivery.id,
          "duplicate: its body came before",
          null,
        );
      }
      const earlier = recorded.earlier?.outcome ?? "received";
      return {
        outcome: "duplicate",
        note: `${key === bodyKey ? "this body" : `delivery ${delivery.id}`} was received before (${earlier === "received" ? "being acted on" : earlier}): nothing new starts`,
        run_id: recorded.earlier?.run_id ?? null,
      };
    }
    claimed.push(key);
  }
  const settle = async (result: DeliveryOutcome): Promise<DeliveryOutcome> => {
    for (const key of claimed) {
      await deps.store.forges.settleDelivery(
        forge.id,
        key,
        `${result.outcome}: ${result.note}`,
        result.run_id,
      );
    }
    return result;
  };
  let started: string | null = null;
  try {
    const intent = forgeIntent(forge, delivery.event, delivery.payload);
    if (intent.kind === "ignore") return await settle({ outcome: "ignored", note: intent.why, run_id: null });
    const client = await forgeClient(deps.store, forge);
    const permission = await client.permission(intent.sender);
    if (!mayStartWork(permission)) {
      return await settle({
        outcome: "refused",
        note: `${intent.sender} has ${permission} access to ${forge.repo}; only those who may push start work`,
        run_id: null,
      });
    }
    const owner: RunOwner = { tenantId: forge.tenant_id, tokenId: forge.created_by };
    // The forge's tenant's limits, and its maker's own: the run will be theirs.
    await deps.quotas.checkSubmit(await triggerQuotaPrincipal(deps.store, forge.tenant_id, forge.created_by));
    // What runs is the forge's settings, written by whoever added the forge: the author too.
    const origin = {
      trigger: "forge" as const,
      ref: `${forge.repo}#${intent.number}`,
      authoredBy: forge.created_by,
    };
    const pullName = (n: number) => `${client.terms.pullRequest} ${client.terms.pullRef(n)}`;
    if (intent.kind === "pull") {
      const earlier = await deps.store.forges.latestRun(forge.id, { pull: intent.number });
      if (!earlier) {
        return await settle({
          outcome: "ignored",
          note: `${pullName(intent.number)} was not opened by runyard`,
          run_id: null,
        });
      }
      // The API refuses a follow-up past its cap; a forge's comment of any length is cut to it.
      const text = cutTo(intent.instruction, maxPromptLength, "comment");
      const run = await deps.runs.submitFollowUp(earlier.run_id, text, owner, origin);
      started = run.id;
      await deps.store.forges.addRun({
        run_id: run.id,
        forge_id: forge.id,
        issue_number: earlier.issue_number,
        pull_number: intent.number,
      });
      return await settle({
        outcome: "started",
        note: `follow-up on ${pullName(intent.number)}`,
        run_id: run.id,
      });
    }
    if (intent.unlessStarted) {
      const earlier = await deps.store.forges.latestRun(forge.id, { issue: intent.number });
      if (earlier) {
        return await settle({
          outcome: "ignored",
          note: `issue #${intent.number} has a task already (run ${earlier.run_id}); comment \`/runyard ...\` on it to start another`,
          run_id: null,
        });
      }
    }
    const cloneUrl = (await client.repository()).cloneUrl;
    started = await submitIssueTask(deps, forge, intent, owner, origin, cloneUrl);
    await deps.store.forges.addRun({
      run_id: started,
      forge_id: forge.id,
      issue_number: intent.number,
      pull_number: null,
    });
    return await settle({ outcome: "started", note: `task for issue #${intent.number}`, run_id: started });
  } catch (error) {
    // A run that started keeps the delivery claimed: its redelivery must not start another.
    if (started === null) {
      await deps.store.forges.forgetDeliveries(forge.id, claimed).catch(() => undefined);
    }
    throw notActedOn(delivery.id, started, error);
  }
}

/** The error (a 5xx, or 429 for the quota) that shows the forge a delivery failed, saying what to do. */
function notActedOn(deliveryId: string, started: string | null, error: unknown): RunyardError {
  const what =
    started === null
      ? `delivery ${deliveryId} started nothing`
      : `delivery ${deliveryId} started run ${started} but it could not be recorded`;
  if (error instanceof RunyardError) {
    const redeliver =
      started === null
        ? " Then redeliver it from the repo's webhook settings (Recent Deliveries, Redeliver; on GitLab: Recent events, Resend request): it is acted on then."
        : "";
    return new RunyardError(error.code, `${what}: ${error.message}`, {
      hint: `${error.hint}${redeliver}`,
      details: error.details,
      cause: error,
    });
  }
  const message = error instanceof Error ? error.message : String(error);
  return new RunyardError("INTERNAL", `${what}: ${message}`, {
    ...(started === null
      ? {
          hint: "Redeliver it from the repo's webhook settings (Recent Deliveries, Redeliver): it is acted on then. If it fails again, the server's log has the details.",
        }
      : {}),
    cause: error,
  });
}

/** Submits the agent task of an issue; answers its run id. */
async function submitIssueTask(
  deps: Pick<ServerDeps, "runs">,
  forge: ForgeRecord,
  intent: Extract<ForgeIntent, { kind: "issue" }>,
  owner: RunOwner,
  origin: { trigger: "forge"; ref: string; authoredBy: string | null },
  cloneUrl: string,
): Promise<string> {
  const { settings } = forge;
  const title = intent.title.trim() || `Issue #${intent.number}`;
  const run = await deps.runs.submitForgeAgent(
    {
      kind: "agent",
      agent: forge.agent,
      title: title.slice(0, 200),
      description: issueDescription(forge, intent, title),
      acceptance_criteria: [],
      extra_args: [],
      env: {},
      secrets: [],
      repo: { url: cloneUrl, branch: `runyard/issue-${intent.number}`, push: true },
      ...(settings.test ? { tests: { command: settings.test } } : {}),
      ...(settings.sandbox_image ? { sandbox: { image: settings.sandbox_image } } : {}),
      ...(settings.model ? { model: settings.model } : {}),
      timeout_secs: settings.timeout_secs ?? 1800,
      stall_secs: 120,
      ...(settings.group ? { group: settings.group } : {}),
      labels: [],
    },
    forge.id,
    owner,
    origin,
  );
  return run.id;
}

/** A bad signature or token, or no such forge: one 401 in the same words, revealing no forge or kind. */
export function unknownForge(): RunyardError {
  return new RunyardError(
    "UNAUTHORIZED",
    "the delivery's signature (X-Hub-Signature-256, X-Gitea-Signature) or token (X-Gitlab-Token) does not match this forge's webhook secret",
    {
      hint: "Check the webhook's URL (`runyard forge list` prints it) and its secret (given once by `runyard forge add`): GitHub and Gitea sign with it, GitLab sends it as the secret token.",
    },
  );
}

/**
 * The issue and the comment that asked for it. A self-hosted forge takes an issue of any length, so its
 * body is cut to fit `maxPromptLength`, saying how much was left out, and the comment is always kept.
 */
function issueDescription(
  forge: ForgeRecord,
  intent: Extract<ForgeIntent, { kind: "issue" }>,
  title: string,
): string {
  // The title as the task's (at most 200 characters): a longer one would crowd out the body.
  const head = `Issue #${intent.number} of ${forge.repo}: ${title.slice(0, 200)}`;
  const asked = intent.instruction
    ? `Asked in a comment: ${intent.instruction}`.slice(0, maxPromptLength / 4)
    : "";
  const body = cutTo(intent.body.trim(), maxPromptLength - head.length - asked.length - 200, "issue");
  return [head, body, asked].filter(Boolean).join("\n\n");
}

/** `text` cut to `cap` characters, ending with how many of the `what` were left out. */
function cutTo(text: string, cap: number, what: string): string {
  if (text.length <= cap) return text;
  const note = (left: number) => `\n\n... (${left} more characters of the ${what} were left out)`;
  // The note's own length is taken from the kept part, so the whole stays within the cap.
  const keep = cap - note(text.length).length;
  return `${text.slice(0, keep)}${note(text.length - keep)}`;
}
