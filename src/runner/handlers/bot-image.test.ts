import { describe, expect, it } from "vitest";
import { isLocalGitUrl } from "./bot-image.js";

describe("isLocalGitUrl", () => {
  it("tells the runner's own disk (file://, paths) from remote repositories (URLs, ssh's host:path)", () => {
    for (const url of [
      "file:///srv/mirrors/x.git",
      "FILE:///x",
      "/home/runner/.runyard/workspaces/mirrors/a",
      "./repo",
      "repo.git",
      "../x",
    ])
      expect(isLocalGitUrl(url), url).toBe(true);
    for (const url of [
      "https://github.com/u/bot.git",
      "ssh://git@host/bot.git",
      "git://host/bot",
      "git@github.com:u/bot.git",
    ])
      expect(isLocalGitUrl(url), url).toBe(false);
  });
});
