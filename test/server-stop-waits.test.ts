import { afterAll, describe, expect, it } from "vitest";
import { api, type Proc, runnerToken, startRunner, startTestServer } from "./helpers/server.js";
import { type ModelServer, startModelServer, turns } from "./model-server/server.js";

/**
 * A server told to stop (SIGTERM, Ctrl-C) while a request waits for a run's end: the request is
 * answered with the run as it stands and the server exits, instead of holding the stop for as long
 * as the request may wait (`timeout_secs` of a chat, up to minutes).
 */
let model: ModelServer | undefined;
let runner: Proc | undefined;

afterAll(async () => {
  await runner?.kill("SIGKILL");
  await model?.stop();
});

describe("a server stopping while a request waits for a run", () => {
  it("answers a chat waiting for its run's end and exits, without waiting out the chat's timeout", async () => {
    // The model never answers: the run would go on for the chat's whole timeout_secs.
    model = await startModelServer(turns({ text: "never", fail: { kind: "stall" } }));
    // No drain of the running turn first (it would hold the stop for its 30 s grace): what is
    // under test is the close that follows it.
    const server = await startTestServer(undefined, { RUNYARD_SHUTDOWN_GRACE_MS: "0" });
    runner = await startRunner(server.url, await runnerToken(server.url), {
      id: "chat-runner",
      env: { OPENAI_BASE_URL: `${model.url}/v1`, OPENAI_API_KEY: "sk-test-key" },
    });
    const chat = api<{ run_id: string; status: string; error: { code: string } | null }>(
      server.url,
      "POST",
      "/api/chat",
      {
        message: "hello",
        agent: "openai",
        timeout_secs: 600,
      },
    );
    await model.stalled;
    const exited = server.proc.kill("SIGTERM");
    const answer = await chat;
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    // Not canceled: a stop never cancels work, and the run goes on after the next start.
    expect(answer.body.status).toBe("running");
    expect(answer.body.error?.code).toBe("SERVER_STOPPING");
    expect(await exited).toBe(143);
  });
});
