import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, expect, it } from "vitest";
import { RunyardError } from "../core/errors.js";
import { GitHubClient, githubIntent } from "./github.js";
import { commentInstruction } from "./types.js";

const alice = { login: "alice", type: "User" };
const issue = { number: 7, title: "Add hello.py", body: "It prints hello." };

describe("what a GitHub delivery asks of runyard", () => {
  it("starts a task on an issue labelled with the forge's label, and on no other label", () => {
    expect(
      githubIntent(
        "issues",
        { action: "labeled", label: { name: "runyard" }, issue, sender: alice },
        "runyard",
      ),
    ).toEqual({
      kind: "issue",
      number: 7,
      title: "Add hello.py",
      body: "It prints hello.",
      sender: "alice",
    });
    expect(
      githubIntent("issues", { action: "labeled", label: { name: "bug" }, issue, sender: alice }, "runyard")
        .kind,
    ).toBe("ignore");
    expect(githubIntent("issues", { action: "opened", issue, sender: alice }, "runyard").kind).toBe("ignore");
  });

  it("takes the rest of a /runyard comment as the instruction, and a pull request's as a follow-up", () => {
    const comment = (body: string, pull = false) =>
      githubIntent(
        "issue_comment",
        {
          action: "created",
          issue: { ...issue, ...(pull ? { pull_request: {} } : {}) },
          comment: { body, user: alice },
          sender: alice,
        },
        "runyard",
      );
    expect(comment("/runyard also add a test")).toMatchObject({
      kind: "issue",
      instruction: "also add a test",
    });
    expect(comment("/runyard rename x", true)).toEqual({
      kind: "pull",
      number: 7,
      instruction: "rename x",
      sender: "alice",
    });
    expect(comment("looks good").kind).toBe("ignore");
    expect(comment("/runyardx do it").kind).toBe("ignore");
  });

  it("takes a review comment as a follow-up on its pull request", () => {
    expect(
      githubIntent(
        "pull_request_review_comment",
        {
          action: "created",
          pull_request: { number: 12 },
          comment: { body: "rename x to y", user: alice },
          sender: alice,
        },
        "runyard",
      ),
    ).toEqual({ kind: "pull", number: 12, instruction: "rename x to y", sender: "alice" });
  });

  it("never answers a bot, its own comments included", () => {
    const bot = { login: "runyard[bot]", type: "Bot" };
    expect(
      githubIntent(
        "issue_comment",
        { action: "created", issue, comment: { body: "/runyard go", user: bot }, sender: bot },
        "runyard",
      ).kind,
    ).toBe("ignore");
  });

  it("reads no options in a comment: the whole rest is text", () => {
    expect(commentInstruction("/runyard --push --agent codex fix it")).toBe("--push --agent codex fix it");
    expect(commentInstruction("  /runyard\n\nmulti\nline")).toBe("multi\nline");
    expect(commentInstruction("/runyard")).toBe("");
    expect(commentInstruction("please /runyard")).toBeUndefined();
  });
});

describe("GitHub's API out of reach", () => {
  it("is a typed FORGE_FAILED naming the call, not a bare fetch error", async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const client = new GitHubClient(`http://127.0.0.1:${port}`, "acme/app", "ghp_token");
    const error = await client.permission("alice").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RunyardError);
    expect(error).toMatchObject({ code: "FORGE_FAILED", status: 500 });
    expect((error as RunyardError).message).toContain(
      "GitHub could not be reached for GET /collaborators/alice/permission",
    );
    expect((error as RunyardError).message).not.toContain("ghp_token");
  });
});
