import { describe, expect, it } from "vitest";
import { StartBotBody } from "./bot-spec.js";

describe("StartBotBody", () => {
  it("refuses a NUL in an env value, naming the variable and not the value", () => {
    const parsed = StartBotBody.safeParse({ name: "echo", image: "bot:1", env: { BOT_TOKEN: "12\u000034" } });
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues[0]).toMatchObject({ path: ["env", "BOT_TOKEN"], message: /NUL/ });
    expect(JSON.stringify(parsed.error?.issues)).not.toContain("12");
  });

  it("refuses an image named by an id or by hex digits alone, which Docker reads as an id's prefix", () => {
    for (const image of ["90febb", "sha256:90febb0c1d2e", "0123456789ab", "ABCDEF"]) {
      const parsed = StartBotBody.safeParse({ name: "echo", image });
      expect(parsed.success, image).toBe(false);
      expect(parsed.error?.issues[0]?.message, image).toMatch(/image id/);
    }
    expect(StartBotBody.safeParse({ name: "echo", image: "cafe:1" }).success).toBe(true);
  });
});
