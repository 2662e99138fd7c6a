import { describe, expect, it } from "vitest";
import { credentialedPullMark, dockerTagForm, pulledWithCredentials } from "./credentialed-pulls.js";

describe("images pulled with credentials", () => {
  it("names a reference as Docker lists it among an image's tags", () => {
    expect(dockerTagForm("acme/bot")).toBe("acme/bot:latest");
    expect(dockerTagForm("docker.io/acme/bot:v1")).toBe("acme/bot:v1");
    expect(dockerTagForm("docker.io/library/alpine")).toBe("alpine:latest");
    expect(dockerTagForm("127.0.0.1:5000/bots/echo")).toBe("127.0.0.1:5000/bots/echo:latest");
    expect(dockerTagForm("127.0.0.1:5000/bots/echo:1")).toBe("127.0.0.1:5000/bots/echo:1");
    expect(dockerTagForm("acme/bot@sha256:abc")).toBe("acme/bot@sha256:abc");
    expect(credentialedPullMark("docker.io/acme/bot")).toBe(credentialedPullMark("acme/bot:latest"));
  });

  it("holds an image back when every name it has came with credentials", () => {
    const mark = credentialedPullMark("acme/secret:v1");
    expect(pulledWithCredentials(["acme/secret:v1", mark])).toBe(true);
    // Pulled by digest: no name but the mark.
    expect(pulledWithCredentials([credentialedPullMark("acme/secret@sha256:abc")])).toBe(true);
    expect(pulledWithCredentials(["acme/secret:v1", "acme/secret:v2", mark])).toBe(false);
    expect(
      pulledWithCredentials([
        "acme/secret:v1",
        "acme/secret:v2",
        mark,
        credentialedPullMark("acme/secret:v2"),
      ]),
    ).toBe(true);
  });

  it("serves an image the operator also has under a name of their own, or one never marked", () => {
    expect(
      pulledWithCredentials([
        "busybox:1",
        "reg.example:5000/bots/echo:1",
        credentialedPullMark("reg.example:5000/bots/echo:1"),
      ]),
    ).toBe(false);
    expect(pulledWithCredentials(["acme/public:v1"])).toBe(false);
    expect(pulledWithCredentials(null)).toBe(false);
  });
});
