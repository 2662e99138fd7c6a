import type { components } from "../client/api-types.js";
import { RunyardError } from "../core/errors.js";
import { apiClient } from "./api-client.js";
import type { CliContext } from "./context.js";
import { printList } from "./table.js";

type SecretView = components["schemas"]["Secret"];

interface TenantFlag {
  /** Admin tokens: act on this tenant's secrets. */
  tenant?: string;
}

const pipeHint =
  'Pipe the value in: `printf %s "$VALUE" | runyard secret set NAME`, or `runyard secret set NAME < key-file`.';

function secretPath(name: string | undefined, flags: TenantFlag): string {
  const query = flags.tenant ? `?tenant=${encodeURIComponent(flags.tenant)}` : "";
  return `/api/secrets${name === undefined ? "" : `/${encodeURIComponent(name)}`}${query}`;
}

const whose = (tenant: string | null): string =>
  tenant === null ? "outside any tenant" : `for tenant ${tenant}`;

/**
 * The value piped to stdin. One trailing newline of a one-line value goes (`echo token |` adds
 * it); a multi-line value (a key file) is kept byte for byte.
 */
export async function readValue(stdin: CliContext["stdin"]): Promise<string> {
  if (stdin.isTTY) {
    throw new RunyardError(
      "USAGE",
      "runyard secret set reads the value from stdin, and stdin is a terminal",
      { hint: pipeHint },
    );
  }
  const chunks: Buffer[] = [];
  for await (const chunk of stdin) chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : chunk);
  const text = Buffer.concat(chunks).toString("utf8");
  const line = /^([^\n]*?)\r?\n$/.exec(text);
  const value = line ? (line[1] ?? "") : text;
  if (value === "") throw new RunyardError("USAGE", "no value on stdin", { hint: pipeHint });
  return value;
}

/** `runyard secret set NAME`: stores the value piped to stdin (never one from argv). */
export async function secretSet(
  name: string,
  argvValue: string | undefined,
  flags: TenantFlag,
  ctx: CliContext,
): Promise<number> {
  if (argvValue !== undefined) {
    throw new RunyardError("USAGE", "the value of a secret is read from stdin, never from the command line", {
      hint: `A value in argv lands in shell history and in \`ps\` for everyone on the machine. ${pipeHint}`,
    });
  }
  const value = await readValue(ctx.stdin);
  const secret = await apiClient(ctx).request<SecretView>("PUT", secretPath(name, flags), { value });
  const verb = secret.created_at === secret.updated_at ? "stored" : "updated";
  ctx.stdout.write(`secret ${secret.name} ${verb} ${whose(secret.tenant_id)}\n`);
  return 0;
}

/** `runyard secret list`: names and when they changed, never values. */
export async function secretList(flags: TenantFlag & { json?: boolean }, ctx: CliContext): Promise<number> {
  const { secrets } = await apiClient(ctx).request<{ secrets: SecretView[] }>(
    "GET",
    secretPath(undefined, flags),
  );
  return printList(ctx.stdout, secrets, {
    json: flags.json,
    empty: "no secrets yet; store one with `runyard secret set NAME < file`",
    header: ["NAME", "UPDATED", "BY"],
    row: (s) => [s.name, s.updated_at, s.updated_by ?? "-"],
  });
}

/** `runyard secret rm NAME`. */
export async function secretRemove(name: string, flags: TenantFlag, ctx: CliContext): Promise<number> {
  const removed = await apiClient(ctx).request<{ name: string; tenant_id: string | null }>(
    "DELETE",
    secretPath(name, flags),
  );
  ctx.stdout.write(`secret ${removed.name} removed ${whose(removed.tenant_id)}\n`);
  return 0;
}
