import { expect } from "vitest";
import { runCli } from "./cli.js";
import { adminToken } from "./server.js";

/** A forge added as its operator adds one: `runyard forge add KIND`, the bot's token on stdin. */
export interface AddedForge {
  id: string;
  /** Where the forge delivers its webhooks, whole. */
  webhookUrl: string;
  webhookSecret: string;
}

export interface ForgeOptions {
  serverUrl: string;
  forgeUrl: string;
  repo: string;
  botToken: string;
  agent: string;
  test: string;
  /** Who adds it (a platform admin's token when not given). */
  token?: string;
}

/** Adds `repo` of the scripted GitHub at `forgeUrl` to the server, its tasks run by `agent` and checked by `test`. */
export function addGithubForge(options: ForgeOptions): Promise<AddedForge> {
  return addForge("github", options);
}

/** Adds `repo` of a scripted forge of `kind` (github, gitlab, gitea) at `forgeUrl` as `addGithubForge` does. */
export async function addForge(kind: string, options: ForgeOptions): Promise<AddedForge> {
  const added = await runCli(
    [
      "forge",
      "add",
      kind,
      "--repo",
      options.repo,
      "--url",
      options.forgeUrl,
      "--secret-stdin",
      "--agent",
      options.agent,
      "--test",
      options.test,
      "--server",
      options.serverUrl,
      "--json",
    ],
    { input: options.botToken, env: { RUNYARD_TOKEN: options.token ?? adminToken } },
  );
  expect(added.code, added.stderr).toBe(0);
  const created = JSON.parse(added.stdout) as { id: string; webhook_url: string; webhook_secret: string };
  return {
    id: created.id,
    webhookUrl: new URL(created.webhook_url, options.serverUrl).href,
    webhookSecret: created.webhook_secret,
  };
}

/** The run a delivery started: it was answered 202 `started`. */
export function startedRun(delivery: { status: number; body: string }): string {
  expect(delivery.status, delivery.body).toBe(202);
  const answer = JSON.parse(delivery.body) as { outcome: string; run_id: string | null };
  expect(answer.outcome, delivery.body).toBe("started");
  return answer.run_id as string;
}
