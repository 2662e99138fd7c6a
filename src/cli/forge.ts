import type { components } from "../client/api-types.js";
import { RunyardError } from "../core/errors.js";
import { printable } from "../core/terminal-text.js";
import { apiClient } from "./api-client.js";
import type { CliContext } from "./context.js";
import { printJson, printList } from "./table.js";

type ForgeView = components["schemas"]["Forge"];

export interface ForgeAddFlags {
  repo: string;
  url?: string;
  secretStdin?: boolean;
  label?: string;
  agent?: string;
  test?: string;
  sandbox?: string;
  json?: boolean;
}

/** The forge kinds `forge add` takes (Forgejo speaks Gitea's API), and where each one's webhook is set up. */
const kinds: Record<string, { token: string; webhook: string }> = {
  github: {
    token: "GITHUB_TOKEN",
    webhook:
      "In the repo's Settings > Webhooks, add the URL (content type application/json) and the secret, with the events Issues, Issue comments and Pull request review comments",
  },
  gitlab: {
    token: "GITLAB_TOKEN",
    webhook:
      "In the project's Settings > Webhooks, add the URL and the secret as its Secret token, with the triggers Issues events and Comments",
  },
  gitea: {
    token: "GITEA_TOKEN",
    webhook:
      "In the repo's Settings > Webhooks, add a Gitea webhook with the URL, POST Content Type application/json and the secret, triggered by Issues, Issue Comment and Pull Request Comment events",
  },
};

/**
 * `runyard forge add github|gitlab|gitea --repo OWNER/NAME --secret-stdin [--url API] [--label
 * runyard] [--agent claude_code]`: the forge's token comes from stdin, never argv (which `ps`
 * shows); prints the webhook's URL and its secret, once, to paste into the repo's webhook
 * settings.
 */
export async function forgeAdd(kind: string, flags: ForgeAddFlags, ctx: CliContext): Promise<number> {
  const known = kinds[kind];
  if (!Object.hasOwn(kinds, kind) || !known) {
    throw new RunyardError("USAGE", `unknown forge kind ${JSON.stringify(printable(kind))}`, {
      hint: `The kinds are ${Object.keys(kinds).join(", ")}: github for github.com or GitHub Enterprise, gitlab for gitlab.com or a self-managed GitLab, gitea for Gitea and Forgejo (codeberg.org too).`,
    });
  }
  if (!flags.secretStdin) {
    throw new RunyardError("USAGE", "the forge's token is read from standard input: add --secret-stdin", {
      hint: `Pipe it in: \`printf %s "$${known.token}" | runyard forge add ${kind} --repo OWNER/NAME --secret-stdin\` (a token on the command line would show in \`ps\`).`,
    });
  }
  const token = await readToken(ctx.stdin, kind, known.token);
  const api = apiClient(ctx);
  const forge = await api.request<ForgeView & { webhook_secret: string }>("POST", "/api/forges", {
    kind,
    repo: flags.repo,
    token,
    ...(flags.url ? { api_url: flags.url } : {}),
    ...(flags.label ? { label: flags.label } : {}),
    ...(flags.agent ? { agent: flags.agent } : {}),
    ...(flags.test ? { test: flags.test } : {}),
    ...(flags.sandbox ? { sandbox_image: flags.sandbox } : {}),
  });
  if (flags.json) return printJson(ctx.stdout, forge);
  const url = new URL(forge.webhook_url, api.baseUrl).href;
  ctx.stdout.write(
    `forge ${forge.id}: ${forge.repo} (${forge.kind}), agent ${forge.agent}, label ${forge.label}\n`,
  );
  ctx.stdout.write(`webhook URL:    ${url}\n`);
  ctx.stdout.write(`webhook secret: ${forge.webhook_secret}\n`);
  ctx.stderr.write(`the secret is shown this once. ${known.webhook}\n`);
  return 0;
}

async function readToken(stdin: CliContext["stdin"], kind: string, variable: string): Promise<string> {
  const hint = `Pipe it in: \`printf %s "$${variable}" | runyard forge add ${kind} --repo OWNER/NAME --secret-stdin\`.`;
  if (stdin.isTTY)
    throw new RunyardError("USAGE", "--secret-stdin reads the token from stdin, and stdin is a terminal", {
      hint,
    });
  const chunks: Buffer[] = [];
  for await (const chunk of stdin) chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : chunk);
  const token = Buffer.concat(chunks).toString("utf8").trim();
  if (!token) throw new RunyardError("USAGE", "no token on stdin", { hint });
  return token;
}

/** `runyard forge list`: the forges of your tenant, never their tokens or secrets. */
export async function forgeList(flags: { json?: boolean }, ctx: CliContext): Promise<number> {
  const api = apiClient(ctx);
  const { forges } = await api.request<{ forges: ForgeView[] }>("GET", "/api/forges");
  return printList(ctx.stdout, forges, {
    json: flags.json,
    empty:
      "no forges yet; add one with `runyard forge add github|gitlab|gitea --repo OWNER/NAME --secret-stdin`",
    header: ["ID", "KIND", "REPO", "AGENT", "LABEL", "WEBHOOK URL"],
    row: (forge) => [
      forge.id,
      forge.kind,
      printable(forge.repo),
      forge.agent,
      printable(forge.label),
      new URL(forge.webhook_url, api.baseUrl).href,
    ],
  });
}

/** `runyard forge rm ID`. */
export async function forgeRemove(id: string, ctx: CliContext): Promise<number> {
  await apiClient(ctx).request("DELETE", `/api/forges/${encodeURIComponent(id)}`);
  ctx.stdout.write(`forge ${id} removed\n`);
  return 0;
}
