import { GitHubClient, githubIntent } from "../../forges/github.js";
import type { ForgeClient, ForgeIntent } from "../../forges/types.js";
import type { ForgeRecord, Store } from "../../store/index.js";

/** The forge kinds runyard speaks; one file each under src/forges/. */
export const forgeKinds = ["github"] as const;

/** A forge's API client, with its token from the store. */
export async function forgeClient(store: Pick<Store, "forges">, forge: ForgeRecord): Promise<ForgeClient> {
  const secrets = await store.forges.secrets(forge.id);
  if (!secrets) throw new Error(`forge ${forge.id} is gone`);
  return new GitHubClient(forge.api_url, forge.repo, secrets.token);
}

/** What a delivery to `forge` asks. */
export function forgeIntent(forge: ForgeRecord, event: string, payload: unknown): ForgeIntent {
  return githubIntent(event, payload, forge.label);
}
