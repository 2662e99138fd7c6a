import { describe, expect, it } from "vitest";
import { giteaIntent } from "./gitea.js";

const alice = { login: "alice" };
const issue = { number: 4, title: "Add hello.py", body: "It prints hello.", pull_request: null };

describe("what a Gitea or Forgejo delivery asks of runyard", () => {
  it("starts a task on label_updated when the issue has the label, once per issue", () => {
    const updated = (...names: string[]) =>
      giteaIntent(
        "issues",
        {
          action: "label_updated",
          issue: { ...issue, labels: names.map((name) => ({ name })) },
          sender: alice,
        },
        "runyard",
      );
    expect(updated("runyard", "bug")).toEqual({
      kind: "issue",
      number: 4,
      title: "Add hello.py",
      body: "It prints hello.",
      sender: "alice",
      unlessStarted: true,
    });
    expect(updated("bug").kind).toBe("ignore");
    expect(
      giteaIntent(
        "issues",
        { action: "labeled", label: { name: "runyard" }, issue, sender: alice },
        "runyard",
      ),
    ).toMatchObject({ kind: "issue", number: 4 });
    expect(
      giteaIntent(
        "issues",
        {
          action: "label_updated",
          issue: { ...issue, pull_request: {}, labels: [{ name: "runyard" }] },
          sender: alice,
        },
        "runyard",
      ).kind,
    ).toBe("ignore");
  });

  it("takes /runyard comments on issues as tasks and on pull requests as follow-ups", () => {
    const comment = (body: string, isPull = false, event = "issue_comment") =>
      giteaIntent(
        event,
        {
          action: "created",
          issue: { ...issue, ...(isPull ? { pull_request: { merged: false } } : {}) },
          comment: { body, user: alice },
          is_pull: isPull,
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
      number: 4,
      instruction: "rename x",
      sender: "alice",
    });
    expect(comment("/runyard rename x", true, "pull_request_comment")).toMatchObject({ kind: "pull" });
    expect(comment("Pushed a new commit.", true).kind).toBe("ignore");
    expect(comment("/runyard", true).kind).toBe("ignore");
  });

  it("takes a review's comment as a follow-up", () => {
    expect(
      giteaIntent(
        "pull_request_comment",
        {
          action: "reviewed",
          number: 6,
          pull_request: { number: 6 },
          review: { type: "pull_request_review_comment", content: "rename x" },
          sender: alice,
        },
        "runyard",
      ),
    ).toEqual({ kind: "pull", number: 6, instruction: "rename x", sender: "alice" });
  });
});
