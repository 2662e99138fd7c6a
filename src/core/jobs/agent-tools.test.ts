import { describe, expect, it } from "vitest";
import { CopiedFile, repoMatches, repoMatchName } from "./agent-tools.js";

describe("agent_repos patterns", () => {
  it("match a repository's URL written as host/owner/name, whatever its scheme, user or .git", () => {
    for (const url of [
      "https://github.com/acme/api.git",
      "https://x-access-token@github.com/acme/api",
      "ssh://git@github.com/acme/api.git",
      "git@github.com:acme/api.git",
      "https://GitHub.com/acme/api/",
    ]) {
      expect(repoMatchName(url), url).toBe("github.com/acme/api");
    }
    expect(repoMatches("github.com/acme/*", "https://github.com/acme/api.git")).toBe(true);
    expect(repoMatches("github.com/acme/*", "https://github.com/acme/api/sub")).toBe(false);
    expect(repoMatches("github.com/**", "https://github.com/acme/api/sub")).toBe(true);
    expect(repoMatches("github.com/acme/api", "https://github.com/acme/api-evil")).toBe(false);
    expect(repoMatches("github.com/acme.api", "https://github.com/acmeXapi")).toBe(false);
  });

  it("copy_files are relative paths without ..", () => {
    for (const bad of ["/etc/passwd", "../x", "a/../../x", "a\\..\\x", ""]) {
      expect(CopiedFile.safeParse(bad).success, bad).toBe(false);
    }
    for (const good of [".env", "config/local.json", "./a"]) {
      expect(CopiedFile.safeParse(good).success, good).toBe(true);
    }
  });
});
