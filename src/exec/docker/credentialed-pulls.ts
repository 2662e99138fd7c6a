import { createHash } from "node:crypto";

/**
 * Images pulled with a user's registry credentials carry a tag of this repository on the engine,
 * one per name pulled. Docker keeps one local store for everyone: without the mark, an image
 * someone pulled privately would serve anyone who names it (a bot of another tenant, a `FROM`,
 * an `executor: docker` step) though the registry would refuse them.
 */
export const credentialedPullRepo = "runyard-pulled-with-credentials";

/** The marker tag a pull of `ref` with credentials leaves on the image it pulled. */
export function credentialedPullMark(ref: string): string {
  const tag = createHash("sha256").update(dockerTagForm(ref)).digest("hex").slice(0, 24);
  return `${credentialedPullRepo}:${tag}`;
}

/**
 * A reference as Docker lists it among an image's `RepoTags`: Docker Hub's `docker.io/` and
 * `library/` left out, `:latest` where no tag (nor digest) is given.
 */
export function dockerTagForm(ref: string): string {
  let name = ref;
  for (const prefix of ["docker.io/", "index.docker.io/"]) {
    if (name.startsWith(prefix)) name = name.slice(prefix.length);
  }
  if (name.startsWith("library/") && name.split("/").length === 2) name = name.slice("library/".length);
  if (name.includes("@")) return name;
  const lastPart = name.slice(name.lastIndexOf("/") + 1);
  return lastPart.includes(":") ? name : `${name}:latest`;
}

/** The marker tags among an image's `RepoTags` (from inspect): what `docker rmi` takes off. */
export function credentialMarks(repoTags: readonly string[] | null | undefined): string[] {
  return (repoTags ?? []).filter((tag) => tag.startsWith(`${credentialedPullRepo}:`));
}

/**
 * Whether an image (its `RepoTags` from inspect) is on the engine only because someone pulled it
 * with credentials: it bears a mark, and every name it has was pulled that way. An image that
 * also has a name nobody pulled with credentials (the operator's own `docker pull` or `build`
 * of the same content) is the operator's, and serves anyone as before.
 */
export function pulledWithCredentials(repoTags: readonly string[] | null | undefined): boolean {
  const marks = credentialMarks(repoTags);
  if (marks.length === 0) return false;
  const names = (repoTags ?? []).filter((tag) => !marks.includes(tag) && tag !== "<none>:<none>");
  return names.every((name) => marks.includes(credentialedPullMark(name)));
}
