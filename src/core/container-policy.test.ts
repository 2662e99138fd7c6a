import { describe, expect, it } from "vitest";
import {
  isBotImageName,
  isImageId,
  memberContainerRefusal,
  memberImageLabelsRefusal,
} from "./container-policy.js";

describe("a member's step containers", () => {
  const refusal = (image: string, network = "none") => memberContainerRefusal("box", { image, network });

  it("may have network none or host, and nothing else", () => {
    expect(refusal("busybox:1.36")).toBeUndefined();
    expect(refusal("busybox:1.36", "host")).toBeUndefined();
    for (const network of ["bridge", "container:runyard-bot-x", "tenant-b-net", "container:3f2a9c"]) {
      expect(refusal("busybox:1.36", network), network).toMatchObject({
        key: "network",
        message: `host "box" asks for the network ${JSON.stringify(network)}; a member's step containers may have network none or host`,
        hint: expect.stringContaining("network: host"),
      });
    }
  });

  it("take no image by id: sha256:..., or a bare hex id or prefix", () => {
    for (const image of [`sha256:${"a".repeat(64)}`, "sha256:3f2a", "3f2a9c01", "a".repeat(64), "DEADBEEF"]) {
      expect(isImageId(image), image).toBe(true);
      expect(refusal(image)?.key, image).toBe("image");
    }
    for (const image of ["busybox", "deadbeef:1", "ghcr.io/acme/app@sha256:abc", "node:20"]) {
      expect(isImageId(image), image).toBe(false);
    }
  });

  it("never run in an image runyard built for a bot, by its name however written", () => {
    for (const image of [
      "runyard-bot-b1:latest",
      "runyard-bot-b1",
      "library/runyard-bot-b1:latest",
      "docker.io/library/runyard-bot-b1:latest",
    ]) {
      expect(isBotImageName(image), image).toBe(true);
      expect(refusal(image)).toMatchObject({
        key: "image",
        message: expect.stringContaining("built for a bot"),
      });
    }
    expect(isBotImageName("ghcr.io/acme/runyard-bot-b1:latest")).toBe(false);
    expect(isBotImageName("my-runyard-bot-b1")).toBe(false);
  });

  it("nor by any name when the image's labels say it was built for a bot", () => {
    expect(
      memberImageLabelsRefusal("box", "app:1", { "runyard.bot": "b1", "runyard.managed": "1" }),
    ).toMatchObject({
      key: "image",
      message:
        'image "app:1" of host "box" was built by runyard for a bot; a member\'s step containers may not run in a bot\'s image',
    });
    expect(memberImageLabelsRefusal("box", "app:1", { "runyard.managed": "1" })).toBeUndefined();
    expect(memberImageLabelsRefusal("box", "app:1", {})).toBeUndefined();
  });
});
