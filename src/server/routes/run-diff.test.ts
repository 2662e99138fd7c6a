import { describe, expect, it } from "vitest";
import { reviewCommentOf, reviewPrompt } from "./run-diff.js";

describe("a review comment's prompt", () => {
  it("gives back the comment it was made from: file, line, agent and text", () => {
    const comment = { agent: "openai", path: "src/a:b.py", line: 12, text: "rename x\n\nand y" };
    expect(reviewCommentOf(reviewPrompt(comment))).toEqual(comment);
  });

  it("gives back a comment on a whole file that names no agent", () => {
    expect(reviewCommentOf(reviewPrompt({ path: "hello.py", text: "print the name" }))).toEqual({
      path: "hello.py",
      text: "print the name",
    });
  });

  it("reads any other follow-up message as no comment", () => {
    expect(reviewCommentOf("Anything else?")).toBeUndefined();
    expect(reviewCommentOf("Review comment on hello.py: keep it")).toBeUndefined();
  });
});
