import { describe, expect, it } from "vitest";
import { sinceTime } from "./bot.js";
import { envOf, isGitSource } from "./bot-start-body.js";

describe("bot start arguments", () => {
  it.each([
    ["https://github.com/you/bot.git", true],
    ["http://git.local/bot", true],
    ["ssh://git@host/bot.git", true],
    ["git@github.com:you/bot.git", true],
    ["file:///srv/git/bot.git", true],
    ["bot.git", true],
    ["./my_project/", false],
    ["bot.tar.gz", false],
    ["C:/bots", false],
  ])("%s is a git source: %s", (source, git) => {
    expect(isGitSource(source)).toBe(git);
  });

  it("takes -e NAME=value, and -e NAME from this shell", () => {
    expect(envOf(["BOT_TOKEN=123:ABC=x", "EMPTY=", "HOME_DIR"], { HOME_DIR: "/h" })).toEqual({
      BOT_TOKEN: "123:ABC=x",
      EMPTY: "",
      HOME_DIR: "/h",
    });
    expect(() => envOf(["NOPE"], {})).toThrow(/NOPE is not set in this shell/);
    expect(() => envOf(["=x"], {})).toThrow(/not an environment variable name/);
  });

  it("reads --since as a duration back from now or an ISO time", () => {
    const now = Date.parse("2026-11-22T12:00:00Z");
    expect(sinceTime("10m", now)).toBe("2026-11-22T11:50:00.000Z");
    expect(sinceTime("2h", now)).toBe("2026-11-22T10:00:00.000Z");
    expect(sinceTime("1d", now)).toBe("2026-11-21T12:00:00.000Z");
    expect(sinceTime("2026-11-22T10:00:00+01:00", now)).toBe("2026-11-22T09:00:00.000Z");
    expect(() => sinceTime("yesterday", now)).toThrow(/expected a duration/);
  });
});
