import { describe, expect, it } from "vitest";
import { pullError, registryOf } from "./docker-pull-error.js";

/** An error as dockerode builds it from a non-2xx answer of /images/create. */
function modemError(statusCode: number, words: string): Error {
  const label = statusCode === 404 ? "unexpected" : "server error";
  return Object.assign(new Error(`(HTTP code ${statusCode}) ${label} - ${words} `), { statusCode });
}

const mask = (text: string) => text.split("s3cret").join("***");

describe("pullError", () => {
  // Docker 20.10.24's words against distribution 2.8.2, copied from real pulls.
  it("reads a refused password or a missing one as BOT_REGISTRY_AUTH, with the password masked", () => {
    const refused = pullError(
      "127.0.0.1:5000/bots/echo:1",
      modemError(500, "unauthorized: authentication required s3cret"),
      mask,
    );
    expect(refused.code).toBe("BOT_REGISTRY_AUTH");
    expect(refused.message).toBe(
      "pulling 127.0.0.1:5000/bots/echo:1: the registry refused the credentials (unauthorized: authentication required ***)",
    );
    const none = pullError(
      "127.0.0.1:5000/bots/echo:1",
      modemError(500, 'Head "http://127.0.0.1:5000/v2/bots/echo/manifests/1": no basic auth credentials'),
      mask,
    );
    expect(none.code).toBe("BOT_REGISTRY_AUTH");
  });

  it("reads a missing tag as BOT_IMAGE_NOT_FOUND and a refused connection or unknown host as unreachable", () => {
    const missing = pullError(
      "127.0.0.1:5000/bots/echo:2",
      modemError(
        404,
        "manifest for 127.0.0.1:5000/bots/echo:2 not found: manifest unknown: manifest unknown",
      ),
      mask,
    );
    expect(missing.code).toBe("BOT_IMAGE_NOT_FOUND");
    expect(missing.hint).toMatch(/tag/);
    const refused = pullError(
      "127.0.0.1:5000/bots/echo:1",
      modemError(
        500,
        'Get "http://127.0.0.1:5000/v2/": dial tcp 127.0.0.1:5000: connect: connection refused',
      ),
      mask,
    );
    expect(refused.code).toBe("BOT_REGISTRY_UNREACHABLE");
    const unknownHost = pullError(
      "registry.example/x:1",
      modemError(500, 'Get "https://registry.example/v2/": dial tcp: lookup registry.example: no such host'),
      mask,
    );
    expect(unknownHost.code).toBe("BOT_REGISTRY_UNREACHABLE");
  });

  it("reads an error line from the pull's stream (no HTTP code) by its words", () => {
    expect(pullError("r:1", new Error("denied: requested access to the resource is denied"), mask).code).toBe(
      "BOT_REGISTRY_AUTH",
    );
  });
});

describe("registryOf", () => {
  it("names the registry as Docker does: first part with a dot, colon or localhost, else Docker Hub", () => {
    expect(registryOf("127.0.0.1:5000/bots/echo:1")).toBe("127.0.0.1:5000");
    expect(registryOf("localhost/x")).toBe("localhost");
    expect(registryOf("ghcr.io/acme/bot:2")).toBe("ghcr.io");
    expect(registryOf("acme/bot:2")).toBe("https://index.docker.io/v1/");
    expect(registryOf("busybox")).toBe("https://index.docker.io/v1/");
    expect(registryOf("docker.io/library/busybox")).toBe("https://index.docker.io/v1/");
  });
});
