/**
 * Retrying a finished workflow run from a step (`runs retry`), or running one of its steps again
 * (`runs run-step`): the new run's spec, with the steps it keeps of the first and their exports.
 */
import { z } from "zod";
import { RunyardError } from "../../core/errors.js";
import { isFinalStatus, StepSummary } from "../../core/events.js";
import { MASK } from "../../core/masking.js";
import { StepAttemptRequest, StepAttemptResult } from "../../core/step-attempt.js";
import type { RunRecord, Store } from "../../store/index.js";
import { type Workflow, workflowProblemsError } from "../../workflow/model.js";
import { hostKey, priorProgress } from "../../workflow/resume.js";
import {
  firstUnfinishedStep,
  instanceNames,
  type KeptStep,
  keptSteps,
  keptStepsIn,
  missingExports,
  unknownStepHint,
} from "../../workflow/retry-plan.js";

/** One host of one step whose outcome a retry keeps, as its spec stores it (encrypted at rest). */
const KeptStepSpec = z.object({
  step: z.string(),
  host: z.string(),
  summary: StepSummary,
  exports: z.record(z.string(), z.string()),
  /** Exports whose values the first run masked (secrets): the retry masks them too. */
  masked: z.array(z.string()).optional(),
});
type KeptStepSpec = z.infer<typeof KeptStepSpec>;

/** A retry's part of a workflow run's spec. */
export const RetrySpec = z.object({
  /** The run retried. */
  of: z.string(),
  /** The step it runs from (or, `only`, the one step it runs). */
  from: z.string(),
  /** `runs run-step`: only `from` runs, with every export of the run retried. */
  only: z.literal(true).optional(),
  kept: z.array(KeptStepSpec),
});
export type RetrySpec = z.infer<typeof RetrySpec>;

/** What the caller asks of a retry. */
export interface RetryAsk {
  /** Retry from this step; default the first step that did not succeed. */
  from?: string;
  /** Run only this step, with the run's exports. */
  only?: string;
  /** The edited workflow that replaces the steps from `from` on. */
  edited?: { text: string; file: string };
  /** Laid over the first run's vars. */
  vars?: Record<string, string>;
}

/** The first run's spec, as a retry reads it. */
export interface RetriedSpec {
  workflow: string;
  vars: Record<string, string>;
  file?: string;
  retry?: RetrySpec;
}

/** The steps the retry of `run` runs from, keeps, and with what text and vars. */
export interface RetryPlan {
  from: string;
  workflow: string;
  file?: string;
  vars: Record<string, string>;
  retry: RetrySpec;
}

/** The retry's workflow: the first run's, or only the step `only` runs (a file-order step, alone). */
export function retriedWorkflow(workflow: Workflow, retry: RetrySpec | undefined): Workflow {
  if (!retry?.only) return workflow;
  const step = workflow.steps.find((s) => s.name === retry.from);
  if (!step) throw new RunyardError("INVALID_INPUT", `the stored workflow has no step "${retry.from}"`);
  const { depends: _depends, ...alone } = step;
  return { ...workflow, steps: [alone] };
}

/** The values a retry masks besides those its workflow names: what the first run masked. */
export function keptSecrets(retry: RetrySpec | undefined): string[] {
  return (retry?.kept ?? [])
    .flatMap((k) => (k.masked ?? []).map((name) => k.exports[name] ?? ""))
    .filter(Boolean);
}

/** The kept steps' real exports, by `hostKey`: a retry carried on reads them from its spec. */
export function keptExports(retry: RetrySpec | undefined): Map<string, Record<string, string>> {
  return new Map((retry?.kept ?? []).map((k) => [hostKey(k.step, k.host), k.exports]));
}

/**
 * Plans the retry of `run`, storing nothing: refuses an unfinished run (CONFLICT), an unknown step
 * (INVALID_INPUT) and an edit reading an export nobody kept (WORKFLOW_INVALID at line:column).
 */
export async function planRetry(
  store: Pick<Store, "events" | "jobs">,
  parse: (text: string, file: string) => Promise<Workflow>,
  run: RunRecord,
  spec: RetriedSpec,
  ask: RetryAsk,
): Promise<RetryPlan> {
  if (!isFinalStatus(run.status)) {
    throw new RunyardError("CONFLICT", `run ${run.id} is ${run.status}: only a finished run is retried`, {
      hint: `Wait for it to end (\`runyard runs logs ${run.id} --follow\`), or cancel it (\`runyard runs cancel ${run.id}\`) and retry then.`,
    });
  }
  const file = spec.file ?? "workflow.yaml";
  const original = await parse(spec.workflow, file);
  const real = new Map([...keptExports(spec.retry), ...(await realExportsOf(store, run.id))]);
  const events = await store.events.list(run.id, {
    limit: 10_000,
    types: ["run.started", "step.started", "step.retrying", "vars.exported", "step.finished"],
  });
  const { hosts } = priorProgress(events, real);
  const masked = maskedExports(events, real);
  const asked = ask.only ?? ask.from;
  if (asked !== undefined && !original.steps.some((step) => step.name === asked)) {
    throw new RunyardError("INVALID_INPUT", `run ${run.id} has no step "${asked}"`, {
      hint: unknownStepHint(original, asked),
    });
  }
  const vars = { ...spec.vars, ...ask.vars };
  if (ask.only !== undefined) {
    const step = original.steps.find((s) => s.name === ask.only);
    const own = new Set(step ? instanceNames(step) : []);
    const kept: KeptStep[] = [];
    for (const [key, progress] of hosts) {
      const [name = "", host = ""] = key.split("\u0000");
      if (own.has(name) || !progress.summary) continue;
      kept.push({ step: name, host, summary: progress.summary, exports: progress.exports });
    }
    return {
      from: ask.only,
      workflow: spec.workflow,
      ...(spec.file ? { file: spec.file } : {}),
      vars,
      retry: { of: run.id, from: ask.only, only: true, kept: withMasked(kept, masked) },
    };
  }
  const from = ask.from ?? firstUnfinishedStep(original, hosts);
  if (from === undefined) {
    throw new RunyardError(
      "INVALID_INPUT",
      `every step of run ${run.id} succeeded: there is nothing to retry`,
      {
        hint: `Give the step to run again from (--from STEP, "from" in the body), or run it whole again with \`POST /api/runs/${run.id}/rerun\`. ${unknownStepHint(original, "")}`,
      },
    );
  }
  let kept = keptSteps(original, from, hosts);
  let text = spec.workflow;
  let editedFile = spec.file;
  if (ask.edited) {
    const edited = await parse(ask.edited.text, ask.edited.file);
    kept = keptStepsIn(edited, kept);
    const exported = Object.assign({}, ...[...hosts.values()].map((h) => h.exports)) as Record<
      string,
      string
    >;
    const problems = missingExports(
      edited,
      kept,
      { ...edited.vars, ...vars },
      { steps: original.steps, exported },
      ask.edited.file,
    );
    if (problems.length > 0) throw workflowProblemsError(ask.edited.file, problems);
    text = ask.edited.text;
    editedFile = ask.edited.file;
  }
  return {
    from,
    workflow: text,
    ...(editedFile ? { file: editedFile } : {}),
    vars,
    retry: { of: run.id, from, kept: withMasked(kept, masked) },
  };
}

function withMasked(kept: KeptStep[], masked: Map<string, Set<string>>): KeptStepSpec[] {
  return kept.map((k) => {
    const names = [...(masked.get(hostKey(k.step, k.host)) ?? [])].filter((name) => name in k.exports);
    return names.length > 0 ? { ...k, masked: names } : k;
  });
}

/** Exports the run's events show masked (secrets), by `hostKey`. */
function maskedExports(
  events: Awaited<ReturnType<Store["events"]["list"]>>,
  real: Map<string, Record<string, string>>,
): Map<string, Set<string>> {
  const masked = new Map<string, Set<string>>();
  for (const event of events) {
    if (event.type !== "vars.exported") continue;
    const key = hostKey(event.step, event.host);
    const values = real.get(key) ?? {};
    for (const [name, shown] of Object.entries(event.vars)) {
      if (shown.includes(MASK) || (values[name] !== undefined && values[name] !== shown)) {
        const names = masked.get(key) ?? new Set<string>();
        names.add(name);
        masked.set(key, names);
      }
    }
  }
  return masked;
}

/** Each step's real exports from its last finished job: events hold secrets masked; later steps need them. */
export async function realExportsOf(
  store: Pick<Store, "jobs">,
  runId: string,
): Promise<Map<string, Record<string, string>>> {
  const latest = new Map<string, { attempt: number; exports: Record<string, string> }>();
  for (const job of await store.jobs.list({ runId })) {
    const request = StepAttemptRequest.safeParse(job.payload);
    const result = StepAttemptResult.safeParse(job.result);
    if (job.status !== "done" || !request.success || !result.success) continue;
    const key = hostKey(request.data.step, request.data.host);
    const known = latest.get(key);
    if (!known || known.attempt < request.data.attempt) {
      latest.set(key, { attempt: request.data.attempt, exports: result.data.exports });
    }
  }
  return new Map([...latest].map(([key, { exports }]) => [key, exports]));
}
