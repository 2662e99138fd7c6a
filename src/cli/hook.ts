import type { components } from "../client/api-types.js";
import { RunyardError } from "../core/errors.js";
import { printable } from "../core/terminal-text.js";
import { apiClient } from "./api-client.js";
import { type CliContext, pipedSecret } from "./context.js";
import { printJson, printList } from "./table.js";
import { parseVarFlags } from "./workflow-file.js";

type HookView = components["schemas"]["Hook"];
type HookCreated = HookView & { secret?: string };

/**
 * `runyard hook create NAME --workflow W [--secret-stdin] [--var HOOK_BRANCH=$.ref ...]`: makes a
 * signed webhook that runs a saved workflow. A generated secret is printed this once.
 */
export async function hookCreate(
  name: string,
  flags: { workflow: string; secretStdin?: boolean; var: string[]; json?: boolean },
  ctx: CliContext,
): Promise<number> {
  let vars: Record<string, string>;
  try {
    vars = parseVarFlags(flags.var);
  } catch {
    throw new RunyardError("USAGE", "--var takes NAME=$.path, e.g. --var HOOK_BRANCH=$.ref", {
      hint: "NAME is letters, digits and _; the path picks a value from each delivery's JSON body.",
    });
  }
  const secret = flags.secretStdin ? await readSecret(ctx.stdin) : undefined;
  const api = apiClient(ctx);
  const hook = await api.request<HookCreated>("POST", "/api/hooks", {
    name,
    workflow: flags.workflow,
    vars,
    ...(secret !== undefined ? { secret } : {}),
  });
  if (flags.json) return printJson(ctx.stdout, hook);
  ctx.stdout.write(`hook ${hook.name} runs saved workflow ${hook.workflow}\n`);
  ctx.stdout.write(`deliver to: ${new URL(hook.url, api.baseUrl).href}\n`);
  for (const [variable, path] of Object.entries(hook.vars)) ctx.stdout.write(`  ${variable} = ${path}\n`);
  if (hook.secret !== undefined) {
    ctx.stdout.write(`secret: ${hook.secret}\n`);
    ctx.stderr.write("the secret is shown this once: keep it where the sender signs deliveries\n");
  }
  return 0;
}

/** The secret piped to stdin, without the newline `echo` adds. */
function readSecret(stdin: CliContext["stdin"]): Promise<string> {
  return pipedSecret(stdin, {
    terminal: "--secret-stdin reads the secret from stdin, and stdin is a terminal",
    empty: "no secret on stdin",
    hint: 'Pipe it in: `printf %s "$SECRET" | runyard hook create NAME --workflow W --secret-stdin`.',
  });
}

/** `runyard hook list`: the hooks of your tenant, never their secrets. */
export async function hookList(flags: { json?: boolean }, ctx: CliContext): Promise<number> {
  const api = apiClient(ctx);
  const { hooks } = await api.request<{ hooks: HookView[] }>("GET", "/api/hooks");
  return printList(ctx.stdout, hooks, {
    json: flags.json,
    empty: "no hooks yet; make one with `runyard hook create NAME --workflow W`",
    // Names are per tenant: a platform admin, who sees every tenant's, sees which is whose.
    header: ["HOOK", "WORKFLOW", "VARS", "URL", "TENANT"],
    row: (hook) => [
      hook.name,
      printable(hook.workflow),
      Object.entries(hook.vars)
        .map(([variable, path]) => `${variable}=${path}`)
        .join(" ") || "-",
      new URL(hook.url, api.baseUrl).href,
      hook.tenant_id ?? "-",
    ],
  });
}

/** `runyard hook rm NAME`. */
export async function hookRemove(name: string, flags: { tenant?: string }, ctx: CliContext): Promise<number> {
  const tenant = flags.tenant ? `?tenant=${encodeURIComponent(flags.tenant)}` : "";
  await apiClient(ctx).request("DELETE", `/api/hooks/${encodeURIComponent(name)}${tenant}`);
  ctx.stdout.write(`hook ${name} removed\n`);
  return 0;
}
