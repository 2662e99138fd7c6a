import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Parser } from "tar";
import { describe, expect, it } from "vitest";
import { checkSimpleSource } from "../bots/simple-build.js";
import { StartBotBody } from "../server/bots/bot-spec.js";
import { sinceTime } from "./bot.js";
import { type BotStartFlags, botStartBody, envOf, isGitSource } from "./bot-start-body.js";

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

describe("docs/bots.md's examples make bodies the server takes", () => {
  const examples = fileURLToPath(new URL("../../examples/bots/", import.meta.url));
  const noFlags: BotStartFlags = { requirement: [], env: [], secret: [], label: [] };
  const ctx = { env: { BOT_TOKEN: "123:ABC" }, stdin: process.stdin };

  it("the echo bot: the avtomatika-bot CLI's quick start", async () => {
    const body = StartBotBody.parse(
      await botStartBody(
        "echo-bot",
        {
          ...noFlags,
          simple: [join(examples, "echo_bot.py")],
          requirement: ["aiogram>=3.0"],
          env: ["BOT_TOKEN"],
        },
        ctx,
      ),
    );
    expect(Object.keys(body.files ?? {})).toEqual(["echo_bot.py"]);
    expect(body.requirements).toEqual(["aiogram>=3.0"]);
    expect(body.env).toEqual({ BOT_TOKEN: "123:ABC" });
    expect(checkSimpleSource({ files: body.files ?? {}, requirements: body.requirements }).entrypoint).toBe(
      "echo_bot.py",
    );
  });

  it("the multi-file bot with --entrypoint", async () => {
    const dir = join(examples, "multi_file_bot");
    const body = StartBotBody.parse(
      await botStartBody(
        "my-bot",
        {
          ...noFlags,
          simple: ["bot.py", "handlers.py", "utils.py"].map((name) => join(dir, name)),
          entrypoint: "bot.py",
          requirement: ["aiogram>=3.0"],
        },
        ctx,
      ),
    );
    expect(Object.keys(body.files ?? {}).sort()).toEqual(["bot.py", "handlers.py", "utils.py"]);
    const source = { files: body.files ?? {}, requirements: body.requirements, entrypoint: "bot.py" };
    expect(checkSimpleSource(source)).toEqual({ entrypoint: "bot.py", language: "python" });
  });

  it("the custom bot: its folder packed with the Dockerfile at the top", async () => {
    const body = StartBotBody.parse(
      await botStartBody("my-bot", { ...noFlags, custom: join(examples, "custom_bot") }, ctx),
    );
    const entries: string[] = [];
    const parser = new Parser({
      onReadEntry: (entry) => {
        entries.push(entry.path);
        entry.resume();
      },
    });
    const ended = new Promise((resolve) => parser.on("end", resolve));
    parser.end(Buffer.from(body.archive ?? "", "base64"));
    await ended;
    expect(entries.sort()).toEqual([".dockerignore", "Dockerfile", "bot.py", "requirements.txt"]);
  });

  it("a git URL becomes git, with its ref", async () => {
    const body = await botStartBody(
      "my-bot",
      { ...noFlags, custom: "https://github.com/you/bot.git", ref: "v1" },
      ctx,
    );
    expect(StartBotBody.parse(body).git).toEqual({ url: "https://github.com/you/bot.git", ref: "v1" });
  });
});
