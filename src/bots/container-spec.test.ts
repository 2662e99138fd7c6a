import { describe, expect, it } from "vitest";
import { defaultContainerLimits } from "../exec/docker/container-spec.js";
import { botContainer } from "./container-spec.js";

const ownership = { botId: "echo", tenantId: "acme", owner: "alice", expiresAt: "2026-11-23T15:00:00.000Z" };

describe("botContainer", () => {
  it("records the owner in labels that extra labels cannot replace, and mounts nothing", () => {
    const spec = botContainer({
      image: "bot:1",
      name: "runyard-bot-echo",
      env: { BOT_TOKEN: "123:ABC" },
      limits: defaultContainerLimits,
      ownership,
      network: "none",
      labels: { "runyard.test": "1", "runyard.owner": "mallory" },
    });
    expect(spec.Labels).toEqual({
      "runyard.test": "1",
      "runyard.bot": "echo",
      "runyard.tenant": "acme",
      "runyard.owner": "alice",
      "runyard.expires_at": "2026-11-23T15:00:00.000Z",
      "runyard.managed": "1",
    });
    expect(spec.HostConfig?.Mounts).toEqual([]);
    expect(spec.HostConfig?.CapDrop).toEqual(["ALL"]);
  });
});
