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

  it("gives back a comment whose text looks like a comment's first line", () => {
    const comment = {
      path: "a.py",
      line: 3,
      text: "Review comment on b.py:4:\nno\n\nAdjust the code for this comment.",
    };
    expect(reviewCommentOf(reviewPrompt(comment))).toEqual(comment);
  });

  it("reads a follow-up message of 256 KiB shaped to make a pattern backtrack in linear time", () => {
    const crafted = [
      `Review comment on ${" (on ".repeat(52_000)}`,
      `Review comment on ${":1 (on x".repeat(32_000)}`,
      `Review comment on ${":1 (on x".repeat(32_000)}:\ntext\n\nAdjust the code for this comment.`,
    ];
    // CPU time of this process, which other work on the machine does not stretch as it does a clock.
    const started = process.cpuUsage();
    for (const prompt of crafted) reviewCommentOf(prompt);
    const { user, system } = process.cpuUsage(started);
    // Each took 7 to 10 s, holding the server's event loop on every GET /api/runs/:id/diff of the
    // run; read in one pass, the three take a few milliseconds.
    expect((user + system) / 1000).toBeLessThan(500);
  });

  it("takes no line number past the safe integers, which the diff's answer could not carry", () => {
    const prompt = "Review comment on a.py:99999999999999999999:\nhi\n\nAdjust the code for this comment.";
    expect(reviewCommentOf(prompt)).toEqual({ path: "a.py:99999999999999999999", text: "hi" });
  });

  it("reads any other follow-up message as no comment", () => {
    expect(reviewCommentOf("Anything else?")).toBeUndefined();
    expect(reviewCommentOf("Review comment on hello.py: keep it")).toBeUndefined();
  });
});
