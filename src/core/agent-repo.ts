import { RunyardError } from "./errors.js";

/**
 * Whether git reads `url` from the runner's own disk: a path (`/srv/git/app.git`, `../app`) or a
 * `file:` URL, where git opens whatever repository that folder leads to (a `.git` file or a
 * `commondir` in it may lead anywhere). Network remotes (`https://`, `ssh://`, `git://`, and
 * `host:path` / `user@host:path`, git's short form of ssh) are not.
 */
export function isLocalRepoUrl(url: string): boolean {
  if (/^file:/i.test(url)) return true;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) return false;
  // git's rule: a colon before the first slash makes it `host:path` (ssh).
  return !/^[^/]*:/.test(url);
}

/**
 * The refusal of a confined task's (anyone's but a platform admin's) repo on the runner's own
 * disk: the runner's git, outside any sandbox, would read it for the task, and the runner keeps
 * there what no member may read (other tasks' kept branches, the mirrors of other tenants'
 * private repositories). Undefined for a network remote.
 */
export function agentRepoRefusal(url: string): RunyardError | undefined {
  if (!isLocalRepoUrl(url)) return undefined;
  return new RunyardError(
    "INVALID_INPUT",
    `the repo ${JSON.stringify(url)} is a folder of the runner: only a platform admin's task may name one`,
    {
      hint: "Give the repository's https or ssh URL (its token as a secret, GITHUB_TOKEN or GIT_TOKEN), or work in a folder under agent_cwd_roots with cwd.",
    },
  );
}
