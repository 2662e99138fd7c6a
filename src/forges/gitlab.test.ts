import { describe, expect, it } from "vitest";
import { gitlabIntent, gitlabPermission } from "./gitlab.js";

const alice = { id: 7, username: "alice" };
const issue = { iid: 3, title: "Add hello.py", description: "It prints hello." };
const labels = (...titles: string[]) => titles.map((title) => ({ title }));

describe("what a GitLab delivery asks of runyard", () => {
  it("starts a task when an issue's labels gain the forge's label, and not when they kept it", () => {
    const hook = (previous: string[], current: string[]) =>
      gitlabIntent(
        "Issue Hook",
        {
          object_kind: "issue",
          user: alice,
          object_attributes: { ...issue, action: "update" },
          labels: labels(...current),
          changes: { labels: { previous: labels(...previous), current: labels(...current) } },
        },
        "runyard",
      );
    expect(hook([], ["runyard"])).toEqual({
      kind: "issue",
      number: 3,
      title: "Add hello.py",
      body: "It prints hello.",
      sender: "alice",
    });
    expect(hook(["runyard"], ["runyard", "bug"]).kind).toBe("ignore");
    expect(hook([], ["bug"]).kind).toBe("ignore");
    // An issue edited without a label change says nothing of labels.
    expect(
      gitlabIntent(
        "Issue Hook",
        { user: alice, object_attributes: { ...issue, action: "update" }, labels: labels("runyard") },
        "runyard",
      ).kind,
    ).toBe("ignore");
    // Opened with the label on.
    expect(
      gitlabIntent(
        "Issue Hook",
        { user: alice, object_attributes: { ...issue, action: "open" }, labels: labels("runyard") },
        "runyard",
      ).kind,
    ).toBe("issue");
  });

  it("takes a /runyard note on an issue, and a note on a merge request's line or /runyard as a follow-up", () => {
    const note = (noteable_type: string, note: string, extra: Record<string, unknown> = {}) =>
      gitlabIntent(
        "Note Hook",
        {
          user: alice,
          object_attributes: { note, noteable_type, type: null, position: null, system: false, ...extra },
          issue,
          merge_request: { iid: 9 },
        },
        "runyard",
      );
    expect(note("Issue", "/runyard also add a test")).toMatchObject({
      kind: "issue",
      number: 3,
      instruction: "also add a test",
    });
    expect(note("Issue", "looks good").kind).toBe("ignore");
    expect(note("MergeRequest", "/runyard rename x")).toEqual({
      kind: "pull",
      number: 9,
      instruction: "rename x",
      sender: "alice",
    });
    // runyard's own notes on a merge request are no command.
    expect(note("MergeRequest", "Pushed a new commit to `runyard/issue-3`.").kind).toBe("ignore");
    expect(note("MergeRequest", "/runyard").kind).toBe("ignore");
    expect(note("MergeRequest", "rename x to y", { type: "DiffNote", position: { new_line: 1 } })).toEqual({
      kind: "pull",
      number: 9,
      instruction: "rename x to y",
      sender: "alice",
    });
    expect(note("MergeRequest", "/runyard go", { system: true }).kind).toBe("ignore");
    expect(note("Snippet", "/runyard go").kind).toBe("ignore");
    expect(gitlabIntent("Push Hook", { user: alice }, "runyard").kind).toBe("ignore");
  });

  it("maps GitLab's access levels: Developer and above may push", () => {
    expect([50, 40, 30, 20, 10, 5, 0].map(gitlabPermission)).toEqual([
      "admin",
      "maintain",
      "write",
      "read",
      "read",
      "none",
      "none",
    ]);
  });
});
