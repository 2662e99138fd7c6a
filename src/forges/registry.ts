import type { ForgeRecord, Store } from "../store/index.js";
import { GiteaClient, giteaIntent } from "./gitea.js";
import { GitHubClient, githubIntent } from "./github.js";
import { GitLabClient, gitlabIntent } from "./gitlab.js";
import type { ForgeClient, ForgeIntent } from "./types.js";

/** The forge kinds runyard speaks; one file each under src/forges/ (Forgejo speaks Gitea's API). */
export const forgeKinds = ["github", "gitlab", "gitea"] as const;
export type ForgeKind = (typeof forgeKinds)[number];

/** A forge's API client, with its token from the store. */
export async function forgeClient(store: Pick<Store, "forges">, forge: ForgeRecord): Promise<ForgeClient> {
  const secrets = await store.forges.secrets(forge.id);
  if (!secrets) throw new Error(`forge ${forge.id} is gone`);
  const kind = forgeKindOf(forge);
  if (kind === "gitlab") return new GitLabClient(forge.api_url, forge.repo, secrets.token);
  if (kind === "gitea") return new GiteaClient(forge.api_url, forge.repo, secrets.token);
  return new GitHubClient(forge.api_url, forge.repo, secrets.token);
}

/** What a delivery to `forge` asks. */
export function forgeIntent(forge: ForgeRecord, event: string, payload: unknown): ForgeIntent {
  const kind = forgeKindOf(forge);
  if (kind === "gitlab") return gitlabIntent(event, payload, forge.label);
  if (kind === "gitea") return giteaIntent(event, payload, forge.label);
  return githubIntent(event, payload, forge.label);
}

/** A stored forge's kind (forges stored before GitLab and Gitea came are GitHub's). */
export function forgeKindOf(forge: Pick<ForgeRecord, "kind">): ForgeKind {
  return (forgeKinds as readonly string[]).includes(forge.kind) ? (forge.kind as ForgeKind) : "github";
}
