import type { operations } from "../client/api-types.js";
import { printable } from "../core/terminal-text.js";
import { apiClient } from "./api-client.js";
import type { CliContext } from "./context.js";
import { follow } from "./runs.js";
import { printJson } from "./table.js";
import { parseVarFlags, readWorkflowText } from "./workflow-file.js";

/** What the server answers to a retry or a one-step run. */
type RetrySubmitted = operations["retryRun"]["responses"][201]["content"]["application/json"];

interface RetryFlags {
  from?: string;
  workflow?: string;
  var: string[];
  follow?: boolean;
  json?: boolean;
  quiet?: boolean;
}

/** `runyard runs retry RUN [--from STEP] [--workflow FILE] [--var K=V]`. */
export async function runsRetry(id: string, flags: RetryFlags, ctx: CliContext): Promise<number> {
  const edited =
    flags.workflow === undefined
      ? undefined
      : { workflow: await readWorkflowText(flags.workflow), file: flags.workflow };
  const api = apiClient(ctx);
  const answer = await api.submit<RetrySubmitted>("POST", `/api/runs/${encodeURIComponent(id)}/retry`, {
    ...(flags.from !== undefined ? { from: flags.from } : {}),
    ...(edited ?? {}),
    vars: parseVarFlags(flags.var),
  });
  return submitted(api, answer, `retries ${answer.retry_of} from step "${answer.from}"`, flags, ctx);
}

/** `runyard runs run-step RUN STEP`: that step alone, with every export of the run. */
export async function runsRunStep(
  id: string,
  step: string,
  flags: Omit<RetryFlags, "from" | "workflow" | "var">,
  ctx: CliContext,
): Promise<number> {
  const api = apiClient(ctx);
  const answer = await api.submit<RetrySubmitted>("POST", `/api/runs/${encodeURIComponent(id)}/run-step`, {
    step,
  });
  return submitted(api, answer, `runs step "${answer.from}" of ${answer.retry_of}`, flags, ctx);
}

async function submitted(
  api: ReturnType<typeof apiClient>,
  answer: RetrySubmitted,
  what: string,
  flags: { follow?: boolean; json?: boolean; quiet?: boolean },
  ctx: CliContext,
): Promise<number> {
  if (flags.json && !flags.follow) return printJson(ctx.stdout, answer);
  if (!flags.json) {
    const kept = answer.kept.length > 0 ? `; kept: ${answer.kept.join(", ")}` : "";
    const out = flags.follow ? ctx.stderr : ctx.stdout;
    out.write(`${printable(`run ${answer.run_id} ${what}${kept}`)}\n`);
  }
  return flags.follow ? follow(api, answer.run_id, flags, ctx) : 0;
}
