import { z } from "zod";
import { RunStatus } from "../../core/events.js";
import type { RunRecord } from "../../store/index.js";
import type { ServerDeps } from "../deps.js";
import { AgentRunSpec } from "../runs/agent-spec.js";

/*
 * Where an agent run sits in its task's thread of turns: a follow-up message or review comment
 * is a new run whose spec names the run it continues (`follow_up`); this shows that link both ways.
 */

/** The start of a turn's prompt kept on each run of a list: enough to tell turns apart. */
const excerptLength = 160;

/** How many of a tenant's newest agent runs are searched for the turns after a run. */
const laterTurnsScanned = 1000;

const LaterTurn = z.object({ run_id: z.string(), status: RunStatus, created_at: z.string() });

export const AgentTurnView = z.object({
  turn: z
    .number()
    .int()
    .positive()
    .describe("1 for the task's first run, 2 for its first follow-up, and so on"),
  conversation: z.string().describe("the task's first run: every turn of the task names it"),
  follows: z.string().nullable().describe("the run this turn continues; null for the first turn"),
  excerpt: z.string().describe(`the start of the turn's prompt (at most ${excerptLength} characters)`),
  prompt: z
    .string()
    .optional()
    .describe(
      "GET /api/runs/:id: the prompt, follow-up message or review comment the turn was given, in full",
    ),
  followed_by: z
    .array(LaterTurn)
    .optional()
    .describe(
      `GET /api/runs/:id: the turns that continue this one, oldest first (found among the tenant's newest ${laterTurnsScanned} agent runs of the task's name)`,
    ),
});
export type AgentTurnView = z.output<typeof AgentTurnView>;

/** An agent run's place in its thread, from its spec; undefined for any other run. */
export function agentTurnOf(run: RunRecord): AgentTurnView | undefined {
  if (run.kind !== "agent") return undefined;
  const spec = AgentRunSpec.safeParse(run.spec);
  if (!spec.success) return undefined;
  const followUp = spec.data.follow_up;
  const excerpt = excerptOf(spec.data.prompt);
  return {
    turn: followUp?.turn ?? 1,
    conversation: followUp?.conversation ?? run.id,
    follows: followUp?.parent_run_id ?? null,
    excerpt: excerpt.length > excerptLength ? `${excerpt.slice(0, excerptLength - 1)}…` : excerpt,
  };
}

/**
 * How much of a prompt its excerpt reads: a list shows hundreds of runs, and collapsing the whole of
 * a 256 KiB prompt of short words takes a tenth of a second; 4 KiB holds the excerpt's words but for
 * a prompt that starts with pages of blank space.
 */
export const excerptWindow = 4096;

/** The prompt's start, its words on one line. */
function excerptOf(prompt: string): string {
  return prompt.slice(0, excerptWindow).replace(/\s+/g, " ").trim();
}

/** The full prompt of an agent run's turn. */
export function promptOf(run: RunRecord): string | undefined {
  const spec = run.kind === "agent" ? AgentRunSpec.safeParse(run.spec) : undefined;
  return spec?.success ? spec.data.prompt : undefined;
}

/**
 * The runs that continue `run`, oldest first. A run's record holds no link to its follow-ups,
 * so they are sought among its tenant's agent runs of its name (a follow-up keeps its task's)
 * created since, newest first, up to a bound: each is read whole, its spec decrypted, so other
 * tasks' runs (a teammate's thousand prompts of 256 KiB) are left to the database to pass over.
 */
export async function laterTurns(deps: Pick<ServerDeps, "store">, run: RunRecord): Promise<RunRecord[]> {
  const found: RunRecord[] = [];
  let before: string | undefined;
  for (let scanned = 0; scanned < laterTurnsScanned; ) {
    const page = await deps.store.runs.list({
      kind: "agent",
      tenantId: run.tenant_id,
      name: run.name,
      limit: 200,
      ...(before ? { before } : {}),
    });
    scanned += page.runs.length;
    for (const later of page.runs) {
      if (later.id !== run.id && agentTurnOf(later)?.follows === run.id) found.push(later);
    }
    const oldest = page.runs.at(-1);
    if (!page.next || !oldest || oldest.created_at < run.created_at) break;
    before = page.next;
  }
  return found.reverse();
}

/** GET /api/runs/:id's view of an agent run's turn: its place, its prompt, and the turns after it. */
export async function agentTurnDetail(
  deps: Pick<ServerDeps, "store">,
  run: RunRecord,
): Promise<AgentTurnView | undefined> {
  const turn = agentTurnOf(run);
  if (!turn) return undefined;
  const later = await laterTurns(deps, run);
  return {
    ...turn,
    prompt: promptOf(run) ?? "",
    followed_by: later.map((r) => ({ run_id: r.id, status: r.status, created_at: r.created_at })),
  };
}
