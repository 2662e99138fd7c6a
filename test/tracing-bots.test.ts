import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type BotView, waitBot } from "./helpers/bots.js";
import { tempDir } from "./helpers/cli.js";
import { commandImage, removeBotObjects, removeTestObjects, requireDocker } from "./helpers/docker.js";
import { type OtlpReceiver, type ReceivedSpan, startOtlpReceiver } from "./helpers/otlp-receiver.js";
import {
  api,
  type Proc,
  runnerToken,
  startRunner,
  startTestServer,
  type TestServer,
} from "./helpers/server.js";

/**
 * A bot's life as a trace of its own, end to end: a real server exporting over OTLP/HTTP to a
 * scripted receiver, a real runner and the real Docker engine. Each state change of the bot is a
 * span from the state before, under the bot run's span; its env's values are never exported.
 */

const haveDocker = await requireDocker();
const run = `trace-bots-${process.pid}-${Date.now().toString(36)}`;
const botToken = `654321:XYZ-secret-${run}`;

let receiver: OtlpReceiver;
let server: TestServer;
let runner: Proc;
const botIds: string[] = [];

const botSpans = (spans: ReceivedSpan[], runId: string) =>
  spans.filter((span) => span.attributes["runyard.run.id"] === runId && span.name.startsWith("bot "));

describe.skipIf(!haveDocker)("a bot's trace", () => {
  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    const image = await commandImage(
      `runyard-test-traced-bot-${run}:1`,
      'trap "exit 0" TERM; echo "traced bot up"; while true; do sleep 1 & wait $!; done',
      run,
    );
    server = await startTestServer(tempDir(), {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
      OTEL_SERVICE_NAME: "runyard-bots-traced",
      RUNYARD_BOT_NETWORK: "none",
      RUNYARD_BOT_MEMORY_MB: "64",
    });
    runner = await startRunner(server.url, await runnerToken(server.url), { id: `traced-bot-runner-${run}` });
    const started = await api<{ bot: BotView; run_id: string }>(server.url, "POST", "/api/bots", {
      name: "traced-bot",
      image,
      env: { BOT_TOKEN: botToken },
    });
    expect(started.status, JSON.stringify(started.body)).toBe(202);
    botIds.push(started.body.bot.id);
  }, 240_000);

  afterAll(async () => {
    await runner?.kill();
    await server?.proc.kill();
    await receiver?.close();
    await removeBotObjects(botIds);
    await removeTestObjects(run);
  }, 60_000);

  it("has each state change as a span from the state before, under the bot run's span, with the runner and no env value", async () => {
    const running = await waitBot(server.url, "traced-bot", (bot) => bot.state === "running");
    const runId = running.run_id!;
    const stopped = await api<BotView>(server.url, "POST", "/api/bots/traced-bot/stop");
    expect(stopped.status, JSON.stringify(stopped.body)).toBe(200);
    const spans = await receiver.waitFor((all) =>
      all.some((span) => span.attributes["runyard.run.id"] === runId && span.name.startsWith("run ")),
    );
    const runSpan = spans.find(
      (span) => span.attributes["runyard.run.id"] === runId && span.name.startsWith("run "),
    )!;
    const states = botSpans(spans, runId).sort((a, b) => Number(a.end - b.end));
    const names = states.map((span) => span.name);
    expect(names).toContain("bot running");
    expect(names.at(-1)).toBe("bot stopped");
    // A state said twice (the stop, by the server and by the runner) is one span.
    expect(names.filter((name) => name === "bot stopped")).toHaveLength(1);
    for (const span of states) {
      expect(span).toMatchObject({ traceId: runSpan.traceId, parentSpanId: runSpan.spanId });
      expect(span.attributes["runyard.bot.id"]).toBe(botIds[0]);
      expect(span.start).toBeLessThanOrEqual(span.end);
    }
    // Each span starts where the one before it ended, naming that state.
    for (const [index, span] of states.entries()) {
      if (index === 0) continue;
      const before = states[index - 1]!;
      expect(span.start).toBe(before.end);
      expect(span.attributes["runyard.bot.previous_state"]).toBe(before.attributes["runyard.bot.state"]);
    }
    const up = states.find((span) => span.name === "bot running")!;
    expect(up.attributes["runyard.runner.id"]).toBe(`traced-bot-runner-${run}`);
    for (const body of receiver.bodies()) expect(body).not.toContain(botToken);
  }, 120_000);
});
