import { describe, expect, it } from "vitest";
import { agentRepoRefusal, isLocalRepoUrl } from "./agent-repo.js";

describe("a repo on the runner's own disk", () => {
  it("is a path or a file: URL; network remotes and git's short ssh form are not", () => {
    for (const url of [
      "/srv/git/app.git",
      "./app",
      "../app.git",
      "app",
      "~/app.git",
      "file:///srv/app.git",
      "FILE:/x",
    ])
      expect(isLocalRepoUrl(url), url).toBe(true);
    for (const url of [
      "https://github.com/acme/app.git",
      "http://127.0.0.1:8080/app.git",
      "ssh://git@github.com/acme/app.git",
      "git://example.com/app.git",
      "git@github.com:acme/app.git",
      "example.com:app.git",
    ])
      expect(isLocalRepoUrl(url), url).toBe(false);
  });

  it("is refused with INVALID_INPUT, saying why and what to give instead", () => {
    const refusal = agentRepoRefusal("/var/lib/runyard/workspaces/r1/kept/run_1-codex.git");
    expect(refusal?.code).toBe("INVALID_INPUT");
    expect(refusal?.message).toContain("is a folder of the runner");
    expect(refusal?.hint).toContain("https or ssh URL");
    expect(agentRepoRefusal("https://github.com/acme/app.git")).toBeUndefined();
  });
});
