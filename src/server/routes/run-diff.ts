import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { RunyardError } from "../../core/errors.js";
import { RunStatus } from "../../core/events.js";
import type { RunRecord } from "../../store/index.js";
import { NoQuery } from "../api-schemas.js";
import { callerOf } from "../auth.js";
import type { ServerDeps } from "../deps.js";
import { protectedResponses } from "../error-responses.js";
import { AgentRunSpec } from "../runs/agent-spec.js";
import { DiffFile, type DiffView, parseDiff } from "../runs/diff-view.js";
import { laterTurns, promptOf } from "./agent-turns.js";
import { followUpParent, maySendFollowUp, submitFollowUp } from "./agents.js";
import { visibleRun } from "./visible-run.js";

const RunParams = z.object({ id: z.string().min(1).describe("the agent run") });

const AgentDiff = z.object({
  agent: z.string(),
  files: z.array(DiffFile),
  omitted_files: z.number().int().describe("files left out because the diff is too large"),
  note: z.string().nullable().describe("why files were left out, and where the whole diff is"),
});

const SentComment = z.object({
  agent: z.string().nullable().describe("whose change it is on; null: the comment named no agent"),
  path: z.string(),
  line: z.number().int().nullable().describe("null: a comment on the whole file"),
  text: z.string(),
  run_id: z.string().describe("the turn the comment started"),
  status: RunStatus,
});

const RunDiff = z.object({
  run_id: z.string(),
  status: RunStatus,
  repo: z
    .object({
      url: z.string(),
      pushed_by_task: z
        .boolean()
        .describe("the task pushes its branch itself (`push`), or this run is one that publishes a branch"),
    })
    .nullable()
    .describe("the repo the run worked on; null for a task in a folder or a chat"),
  may_publish: z
    .boolean()
    .describe("the caller may push the branch, open a pull request or comment: the submitter or an admin"),
  agents: z.array(AgentDiff).describe("one per agent of the run (several for a fan-out), by name"),
  comments: z
    .array(SentComment)
    .describe("the review comments sent on this diff, oldest first, each with the turn it started"),
});

const ReviewCommentBody = z.strictObject({
  agent: z.string().min(1).optional().describe("whose change the comment is on (a fan-out's agent)"),
  path: z.string().min(1, "path is empty: name the file the comment is on").max(4096),
  line: z.number().int().positive().optional().describe("the line in the file as the change left it"),
  text: z.string().min(1, "text is empty: say what the agent should change").max(20_000),
});

const ReviewCommentAnswer = z.object({
  run_id: z.string().describe("the next turn's run"),
  parent_run_id: z.string(),
  status: RunStatus,
  prompt: z.string().describe("the message the agents get"),
});

/** Each agent's diff of `run`, from its `<agent>.diff` artifact. */
async function diffsOf(
  deps: ServerDeps,
  run: RunRecord,
): Promise<Array<DiffView & { agent: string; note: string | null }>> {
  const artifacts = (await deps.store.artifacts.list(run.id)).filter(
    (artifact) => artifact.name.endsWith(".diff") && artifact.content_type === "text/x-diff",
  );
  const out = [];
  for (const artifact of artifacts.sort((a, b) => a.name.localeCompare(b.name))) {
    const stored = await deps.store.artifacts.get(run.id, artifact.name);
    if (!stored) continue;
    const agent = artifact.name.slice(0, -".diff".length);
    const view = parseDiff(stored.content);
    out.push({
      agent,
      ...view,
      note: view.omitted_files
        ? `diff too large: ${view.omitted_files} files omitted; the whole diff is the artifact ${artifact.name} (GET /api/runs/${run.id}/artifacts/${artifact.name})`
        : null,
    });
  }
  return out;
}

/** The next turn's message for a comment on `path` (at `line`) of `agent`'s change. */
export function reviewPrompt(comment: { agent?: string; path: string; line?: number; text: string }): string {
  const where = comment.line === undefined ? comment.path : `${comment.path}:${comment.line}`;
  const whose = comment.agent ? ` (on ${comment.agent}'s change)` : "";
  return `Review comment on ${where}${whose}:\n${comment.text}\n\nAdjust the code for this comment.`;
}

const reviewHead = "Review comment on ";
const reviewTail = "\n\nAdjust the code for this comment.";
/** Read from the end of the first line, so that no prompt (a follow-up message of 256 KiB) costs more than its length. */
const agentSuffix = / \(on ([a-z][a-z0-9_]{0,39})'s change\)$/;
const lineSuffix = /:(\d{1,16})$/;

/** The comment a `reviewPrompt` was made from; undefined for any other message. */
export function reviewCommentOf(
  prompt: string,
): { agent?: string; path: string; line?: number; text: string } | undefined {
  if (!prompt.startsWith(reviewHead) || !prompt.endsWith(reviewTail)) return undefined;
  const newline = prompt.indexOf("\n", reviewHead.length);
  const textEnd = prompt.length - reviewTail.length;
  if (prompt[newline - 1] !== ":" || newline + 1 > textEnd) return undefined;
  let where = prompt.slice(reviewHead.length, newline - 1);
  const agent = agentSuffix.exec(where);
  if (agent) where = where.slice(0, agent.index);
  const lineMatch = lineSuffix.exec(where);
  const line = Number(lineMatch?.[1]);
  // Digits past the safe integers are no line a comment was sent on: the API answers whole lines.
  const onLine = lineMatch && Number.isSafeInteger(line) && line > 0 ? lineMatch : undefined;
  const path = onLine ? where.slice(0, onLine.index) : where;
  if (path === "") return undefined;
  return {
    path,
    text: prompt.slice(newline + 1, textEnd),
    ...(onLine ? { line } : {}),
    ...(agent?.[1] ? { agent: agent[1] } : {}),
  };
}

/** The review comments sent on `run`'s diff: read back from the turns after it, which hold them. */
async function sentComments(deps: ServerDeps, run: RunRecord) {
  return (await laterTurns(deps, run)).flatMap((turn) => {
    const comment = reviewCommentOf(promptOf(turn) ?? "");
    if (!comment) return [];
    return [
      {
        agent: comment.agent ?? null,
        path: comment.path,
        line: comment.line ?? null,
        text: comment.text,
        run_id: turn.id,
        status: turn.status,
      },
    ];
  });
}

export function runDiffRoutes(app: FastifyInstance, deps: ServerDeps): void {
  const api = app.withTypeProvider<ZodTypeProvider>();

  api.get(
    "/api/runs/:id/diff",
    {
      schema: {
        operationId: "getRunDiff",
        summary: "An agent run's diff, per agent, for review",
        description:
          "Each agent's change against the base as its last turn left it (committed or not): files with +/- counts, hunks and numbered lines. Bounded (300 files, 20,000 lines per agent): past that, files are omitted and counted, and `note` names the artifact holding the whole diff. Whoever may see the run; an agent that kept no diff (no repo, or the upload failed) is absent. `comments` are the review comments sent on it, each with the turn it started.",
        tags: ["agents"],
        params: RunParams,
        querystring: NoQuery,
        response: protectedResponses(200, "the diffs", RunDiff, 400, 404),
      },
    },
    async (request) => {
      const run = await visibleRun(deps, request, request.params.id);
      if (run.kind !== "agent") {
        throw new RunyardError(
          "INVALID_INPUT",
          `run ${run.id} is not an agent run: it has no diff to review`,
          { hint: "Ask for the diff of an agent run (`runyard runs list --kind agent`)." },
        );
      }
      const spec = AgentRunSpec.safeParse(run.spec);
      const repo = spec.success ? spec.data.repo : undefined;
      const mayPublish = maySendFollowUp(callerOf(request), run);
      return {
        run_id: run.id,
        status: run.status,
        repo: repo
          ? { url: repo.url, pushed_by_task: repo.push || (spec.success && spec.data.publish !== undefined) }
          : null,
        may_publish: mayPublish,
        agents: await diffsOf(deps, run),
        comments: await sentComments(deps, run),
      };
    },
  );

  api.post(
    "/api/runs/:id/review-comments",
    {
      schema: {
        operationId: "sendReviewComment",
        summary: "Comment on a file or line of an agent run's diff; the comment is the next turn",
        description:
          "Queues the next turn (as POST /api/runs/{id}/messages does) with a message naming the file and line: `Review comment on path:line: ...`. The file must be in the run's diff (of `agent`, when given). The run must have ended; 409 while it runs. Only the run's submitter and admins may comment; anyone else gets 403 FORBIDDEN.",
        tags: ["agents"],
        params: RunParams,
        body: ReviewCommentBody,
        response: protectedResponses(201, "the next turn is queued", ReviewCommentAnswer, 400, 404, 409, 429),
      },
    },
    async (request, reply) => {
      const { parent, principal } = await followUpParent(deps, request, request.params.id);
      const body = request.body;
      const diffs = await diffsOf(deps, parent);
      const mine = body.agent ? diffs.filter((d) => d.agent === body.agent) : diffs;
      if (body.agent && mine.length === 0) {
        throw new RunyardError("INVALID_INPUT", `run ${parent.id} has no diff of agent ${body.agent}`, {
          hint: `Its diffs are of: ${diffs.map((d) => d.agent).join(", ") || "no agent"} (GET /api/runs/${parent.id}/diff).`,
        });
      }
      const file = mine.flatMap((d) => d.files).find((f) => f.path === body.path);
      if (!file) {
        throw new RunyardError("INVALID_INPUT", `${body.path} is not in the diff of run ${parent.id}`, {
          hint: `Comment on a file the change touched; GET /api/runs/${parent.id}/diff lists them. For anything else send a message (POST /api/runs/${parent.id}/messages).`,
        });
      }
      const prompt = reviewPrompt(body);
      const run = await submitFollowUp(deps, request, parent, principal, prompt);
      return reply.code(201).send({ run_id: run.id, parent_run_id: parent.id, status: run.status, prompt });
    },
  );
}
