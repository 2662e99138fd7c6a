import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runEvent } from "../helpers/run-event.js";
import {
  api,
  isFinal,
  type Proc,
  runnerToken,
  startRunner,
  startTestServer,
  type TestServer,
  waitForRun,
} from "../helpers/server.js";
import { type ModelServer, startModelServer, type Turn } from "../model-server/server.js";

/**
 * Turns of one agent conversation on one runner: a real server and runner process, the built-in
 * `openai` agent against the scripted model server. A conversation's turns share its state folder
 * and worktree, so its runner takes them one at a time (runner/handlers/conversation-queue.ts).
 */

const apiKey = "sk-test-key-4d2b8e6f0a";

let server: TestServer;
let runner: Proc;

async function submitAgent(body: Record<string, unknown>): Promise<string> {
  const answer = await api<{ run_id: string }>(server.url, "POST", "/api/runs", { kind: "agent", ...body });
  expect(answer.status, JSON.stringify(answer.body)).toBe(201);
  return answer.body.run_id;
}

/** A model-server match for the requests whose conversation holds `text`. */
const saying = (text: string) => (request: { rawBody: string }) => request.rawBody.includes(text);

/** A finished first turn of the `openai` agent against `model`; `more` adds to its body. */
async function finishedFirstTurn(model: ModelServer, more: Record<string, unknown> = {}): Promise<string> {
  const env = { OPENAI_BASE_URL: `${model.url}/v1`, OPENAI_API_KEY: apiKey };
  const first = await submitAgent({ agent: "openai", prompt: "first message", env, ...more });
  expect((await waitForRun(server.url, first, isFinal, 60_000)).status).toBe("success");
  return first;
}

/** Sends `text` as the next message of `runId`'s conversation; answers the new turn's run id. */
async function messageTo(runId: string, text: string): Promise<string> {
  const answer = await api<{ run_id: string }>(server.url, "POST", `/api/runs/${runId}/messages`, { text });
  expect(answer.status, JSON.stringify(answer.body)).toBe(201);
  return answer.body.run_id;
}

beforeAll(async () => {
  server = await startTestServer();
  runner = await startRunner(server.url, await runnerToken(server.url), {
    id: "conversation-runner",
    capacity: 4,
  });
}, 60_000);

afterAll(async () => {
  await runner?.kill();
  await server?.proc.kill();
});

describe("follow-ups of one conversation", () => {
  it("two messages to one finished run take their turns one after the other, the second told it waits", async () => {
    let release = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    // A turn's requests carry the whole conversation (the turn asked is the count of answers in
    // it): each message matches its own turns. The third's holds the second's turn or not.
    const firstAnswer: Turn = { text: "First answered." };
    const thirdAnswer: Turn = { text: "Third answered." };
    const model = await startModelServer({
      conversations: [
        { match: saying("third message"), turns: [firstAnswer, thirdAnswer, thirdAnswer] },
        { match: saying("second message"), turns: [firstAnswer, { text: "Second answered.", after: held }] },
        { turns: [firstAnswer] },
      ],
    });
    try {
      const first = await finishedFirstTurn(model);
      const message = (text: string) => messageTo(first, text);
      const second = await message("second message");
      await runEvent(server.url, second, (event) => event.type === "step.started" && event.step === "agent");
      const third = await message("third message");
      // The third's first word is the wait, before any step of its own: none runs beside the second's turn.
      const said = await runEvent(
        server.url,
        third,
        (event) => event.type === "notice" || event.type === "step.started",
      );
      expect(said.type === "notice" && said.message).toContain("another turn of this conversation");
      expect(model.requests.some((request) => request.rawBody.includes("third message"))).toBe(false);
      release();
      for (const run of [second, third]) {
        const done = await waitForRun(server.url, run, isFinal, 60_000);
        expect(done.status, JSON.stringify(done.error)).toBe("success");
      }
      const order = model.requests.map((request) =>
        request.rawBody.includes("third message")
          ? "third"
          : request.rawBody.includes("second")
            ? "second"
            : "first",
      );
      expect(order.lastIndexOf("second")).toBeLessThan(order.indexOf("third"));
    } finally {
      release();
      await model.stop();
    }
  });

  it("a runner told to stop gives up a turn still waiting for its conversation at once, saying it never started", async () => {
    let release = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const firstAnswer: Turn = { text: "First answered." };
    const model = await startModelServer({
      conversations: [
        { match: saying("second message"), turns: [firstAnswer, { text: "Second answered.", after: held }] },
        { turns: [firstAnswer, firstAnswer] },
      ],
    });
    // A runner of its own, to stop: the file's runner serves the other tests. Its grace outlasts
    // the test, so a waiting turn it did not give up would still be held when the test checks.
    const group = "stopping-runners";
    const own = await startRunner(server.url, await runnerToken(server.url, group), {
      id: "stopping-runner",
      group,
      env: { RUNYARD_SHUTDOWN_GRACE_MS: "600000" },
    });
    try {
      const first = await finishedFirstTurn(model, { group });
      const message = (text: string) => messageTo(first, text);
      const second = await message("second message");
      await runEvent(server.url, second, (event) => event.type === "step.started" && event.step === "agent");
      const third = await message("third message");
      await runEvent(server.url, third, (event) => event.type === "notice");
      const stopped = own.kill("SIGTERM");
      // Ended while the second's turn is still held: the third was given up, not waited for.
      const gaveUp = await waitForRun(server.url, third, isFinal, 60_000);
      expect(gaveUp.error?.message, JSON.stringify(gaveUp.error)).toContain("it had not started");
      expect(model.requests.some((request) => request.rawBody.includes("third message"))).toBe(false);
      release();
      expect((await waitForRun(server.url, second, isFinal, 60_000)).status).toBe("success");
      expect(await stopped).toBe(143);
    } finally {
      release();
      await own.kill("SIGKILL");
      await model.stop();
    }
  });
});
