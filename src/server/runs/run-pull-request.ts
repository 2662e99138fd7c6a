import { RunyardError } from "../../core/errors.js";
import type { AgentJobResult } from "../../core/jobs/agent.js";
import { forgeClient } from "../../forges/registry.js";
import type { ForgeClient } from "../../forges/types.js";
import type { ForgeRecord, Store } from "../../store/index.js";
import type { ActiveRun } from "./run-kind.js";

/**
 * A URL as a repo is known by: host and path, lower-cased, without scheme, user, port, `.git` or
 * a trailing slash (`https://forge.example/Acme/App.git` and `forge.example/acme/app` are one).
 */
function repoKey(url: string): string {
  const scp = /^[^/@:]+@([^/:]+):(.+)$/.exec(url);
  let hostPath = scp ? `${scp[1]}/${scp[2]}` : url;
  try {
    if (!scp) {
      const parsed = new URL(url);
      hostPath = `${parsed.hostname}${parsed.pathname}`;
    }
  } catch {
    // Not a URL: compared as written.
  }
  return hostPath
    .toLowerCase()
    .replace(/\/+$/, "")
    .replace(/\.git$/, "");
}

/**
 * The forge of `tenantId` whose repo `repoUrl` is (by the clone URL its API gives), or undefined
 * when the tenant added none: only a forge runyard has a token for can open a pull request.
 */
export async function forgeOfRepo(
  store: Pick<Store, "forges">,
  tenantId: string | null,
  repoUrl: string,
): Promise<{ forge: ForgeRecord; client: ForgeClient } | undefined> {
  const key = repoKey(repoUrl);
  const candidates = (await store.forges.list(tenantId)).filter((forge) =>
    key.endsWith(`/${forge.repo.toLowerCase()}`),
  );
  for (const forge of candidates) {
    const client = await forgeClient(store, forge);
    const { cloneUrl } = await client.repository();
    if (repoKey(cloneUrl) === key) return { forge, client };
  }
  return undefined;
}

/** The error of a repo no forge of the tenant holds. */
export function noForgeFor(repoUrl: string): RunyardError {
  return new RunyardError("INVALID_INPUT", `no forge added here holds the repo ${repoUrl}`, {
    hint: "A pull request is opened through a forge runyard has a token for: an admin adds it with `runyard forge add github|gitlab|gitea --repo OWNER/NAME ...` (docs/forges.md). Without one, push the branch and open the pull request on the forge yourself.",
  });
}

/**
 * Opens a pull request per pushed agent branch against the task's base (else the default branch), told
 * in a notice and the agent's vars (`pull_request_url`, `pull_request_number`). An agent whose pull
 * request fails ends failed with FORGE_FAILED, its branch still pushed.
 */
export async function openPullRequests(
  store: Pick<Store, "forges">,
  run: ActiveRun,
  title: string,
  repo: { url: string; base?: string | undefined },
  results: AgentJobResult[],
): Promise<void> {
  const pushed = results.filter((result) => result.pushed && result.branch);
  if (pushed.length === 0) return;
  let found: Awaited<ReturnType<typeof forgeOfRepo>>;
  let failure: RunyardError | undefined;
  try {
    found = await forgeOfRepo(store, run.record.tenant_id, repo.url);
    if (!found) failure = noForgeFor(repo.url);
  } catch (error) {
    failure = forgeFailed(error, "could not reach the repo's forge");
  }
  for (const result of pushed) {
    const branch = result.branch ?? "";
    try {
      if (!found) throw failure;
      const base = repo.base ?? (await found.client.repository()).defaultBranch;
      const pull = await found.client.openPullRequest({
        head: branch,
        base,
        title,
        body: `${title}\n\nPushed by runyard from run ${run.record.id} (agent ${result.agent}).`,
      });
      const { terms } = found.client;
      run.sink.emit({
        type: "notice",
        level: "info",
        message: `opened ${terms.pullRequest} ${terms.pullRef(pull.number)} from ${branch}: ${pull.url}`,
        host: result.agent,
      });
      run.sink.emit({
        type: "vars.exported",
        step: "pull_request",
        host: result.agent,
        vars: { pull_request_url: pull.url, pull_request_number: String(pull.number) },
      });
    } catch (error) {
      const info = forgeFailed(error, `could not open a pull request from ${branch}`).toInfo();
      Object.assign(result, { status: "failed", error: info });
    }
  }
}

function forgeFailed(error: unknown, what: string): RunyardError {
  if (error instanceof RunyardError) return error;
  return new RunyardError(
    "FORGE_FAILED",
    `${what}: ${error instanceof Error ? error.message : String(error)}`,
  );
}
