import { describe, expect, it } from "vitest";
import { parseJsonPath, pickJsonPath } from "./json-path.js";

const push = {
  ref: "refs/heads/main",
  after: "abc123",
  forced: false,
  size: 2,
  head_commit: null,
  repository: { full_name: "acme/app", owner: { login: "acme" } },
  commits: [{ id: "c1", message: "$(touch /tmp/pwned)" }, { id: "c2" }],
  labels: { "pr-id": "7" },
};

const pick = (path: string) => pickJsonPath(push, parseJsonPath(path));

describe("JSONPath-like picking", () => {
  it("follows names and list indexes", () => {
    expect(parseJsonPath("$.commits[0].id")).toEqual(["commits", 0, "id"]);
    expect(pick("$.ref")).toBe("refs/heads/main");
    expect(pick("$.repository.owner.login")).toBe("acme");
    expect(pick("$.commits[1].id")).toBe("c2");
    expect(pick('$.labels["pr-id"]')).toBe("7");
  });

  it("gives numbers and booleans as JSON writes them, objects as JSON, null as empty", () => {
    expect(pick("$.size")).toBe("2");
    expect(pick("$.forced")).toBe("false");
    expect(pick("$.head_commit")).toBe("");
    expect(pick("$.repository.owner")).toBe('{"login":"acme"}');
  });

  it("gives text that looks like shell as the text it is", () => {
    expect(pick("$.commits[0].message")).toBe("$(touch /tmp/pwned)");
  });

  it("answers undefined for what the body does not have", () => {
    expect(pick("$.missing")).toBeUndefined();
    expect(pick("$.commits[5].id")).toBeUndefined();
    expect(pick("$.ref.length")).toBeUndefined();
    expect(pick("$.commits.length")).toBeUndefined();
    expect(pick("$.repository[0]")).toBeUndefined();
    expect(pickJsonPath({}, parseJsonPath("$.constructor"))).toBeUndefined();
    expect(pickJsonPath({}, parseJsonPath("$.__proto__"))).toBeUndefined();
  });

  it("refuses paths it cannot read, saying how to write one", () => {
    for (const path of ["ref", "$", "$.", "$..ref", "$.a[*]", "$.a[-1]", "$.a b", `$${".a".repeat(33)}`]) {
      expect(() => parseJsonPath(path), path).toThrow(/is not a path into the body/);
    }
  });
});
