import { describe, expect, it } from "vitest";
import { anonymousGitEnv, fromRegistry, isLocalGitUrl } from "./bot-image.js";

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

describe("anonymousGitEnv", () => {
  it("clones with nothing of the runner's: not its HOME (gitconfig), ssh agent, keys or system config", () => {
    const env = anonymousGitEnv(
      {
        PATH: "/usr/bin",
        HOME: "/home/runner",
        SSH_AUTH_SOCK: "/tmp/agent.sock",
        GIT_SSH_COMMAND: "ssh -i /home/runner/.ssh/deploy",
      },
      "/tmp/bot-build-1/home",
    );
    expect(env.HOME).toBe("/tmp/bot-build-1/home");
    expect(env.SSH_AUTH_SOCK).toBeUndefined();
    expect(env.GIT_CONFIG_NOSYSTEM).toBe("1");
    expect(env.GIT_SSH_COMMAND).toMatch(/IdentityAgent=none/);
    expect(JSON.stringify(env)).not.toContain("/home/runner");
    expect(env.PATH).toBe("/usr/bin");
  });
});

describe("fromRegistry", () => {
  it("tells references of a registry host (always pulled, with the starter's credentials) from local names", () => {
    for (const ref of [
      "ghcr.io/user/bot:v1",
      "127.0.0.1:5000/bots/echo:1",
      "localhost/bot",
      "registry.local/x",
    ])
      expect(fromRegistry(ref), ref).toBe(true);
    for (const ref of ["mybot:1", "user/bot:v1", "python:3.12-slim", "runyard-test-bot:1"])
      expect(fromRegistry(ref), ref).toBe(false);
  });
});
