import { describe, expect, it } from "vitest";
import type { RunRecord } from "../../store/index.js";
import type { ServerDeps } from "../deps.js";
import { BotControl } from "./bot-control.js";

describe("BotControl.stop", () => {
  it("answers a stop still under way as CONFLICT (409): TIMEOUT is a run outcome whose status (200) no route can send as an error", async () => {
    const stillRunning = { id: "run_1", status: "running" } as RunRecord;
    const deps = {
      runs: { cancel: async () => stillRunning },
      store: { getBot: async () => undefined },
    } as unknown as ServerDeps;
    const bot = { id: "bot_1", name: "echo", state: "running", run_id: "run_1" } as never;
    await expect(new BotControl(deps).stop(bot, 1)).rejects.toMatchObject({
      code: "CONFLICT",
      status: 409,
      message: "bot echo is still stopping after 0 s",
    });
  });
});
