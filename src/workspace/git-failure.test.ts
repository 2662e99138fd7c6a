import { describe, expect, it } from "vitest";
import { classifyGitFailure, displayUrl, maskGitOutput } from "./git-failure.js";

describe("classifyGitFailure", () => {
  it.each([
    ["fatal: Authentication failed for 'https://github.com/o/r.git/'", "auth"],
    ["fatal: could not read Username for 'https://github.com': terminal prompts disabled", "auth"],
    ["fatal: unable to access 'https://github.com/o/r.git/': The requested URL returned error: 403", "auth"],
    ["git@github.com: Permission denied (publickey).\nfatal: Could not read from remote repository.", "auth"],
    [" ! [rejected]        b -> b (fetch first)\nerror: failed to push some refs to 'x'", "rejected"],
    [" ! [remote rejected] b -> b (protected branch hook declined)", "rejected"],
    ["fatal: unable to access 'https://h/r/': Could not resolve host: h", "transient"],
    [
      "fatal: unable to access 'https://h/r/': Failed to connect to h port 443: Connection refused",
      "transient",
    ],
    ["fatal: unable to access 'http://h/r/': The requested URL returned error: 503", "transient"],
    ["fatal: the remote end hung up unexpectedly", "transient"],
    ["error: RPC failed; curl 18 transfer closed with outstanding read data remaining", "transient"],
    ["fatal: unable to access 'https://h/r/': Operation too slow. Less than 1 bytes/sec", "transient"],
    ["fatal: repository 'https://h/r/' not found", "other"],
  ])("%s is %s", (stderr, kind) => {
    expect(classifyGitFailure(stderr)).toBe(kind);
  });
});

describe("displayUrl and maskGitOutput", () => {
  it("takes userinfo out of a URL", () => {
    expect(displayUrl("https://x-access-token:ghp_secret@github.com/o/r.git")).toBe(
      "https://github.com/o/r.git",
    );
    expect(displayUrl("git@github.com:o/r.git")).toBe("git@github.com:o/r.git");
  });

  it("masks the token and userinfo in git output, keeping its last lines", () => {
    const output = [
      ...Array.from({ length: 10 }, (_, i) => `remote: line ${i}`),
      "fatal: unable to access 'https://u:ghp_secret1@h/r/': token ghp_secret1 refused",
    ].join("\n");
    const masked = maskGitOutput(output, ["ghp_secret1"]);
    expect(masked).not.toContain("ghp_secret1");
    expect(masked.split("\n")).toHaveLength(8);
    expect(masked.split("\n").at(-1)).toBe("fatal: unable to access 'https://h/r/': token *** refused");
  });
});
