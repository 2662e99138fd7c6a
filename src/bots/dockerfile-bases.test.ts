import { describe, expect, it } from "vitest";
import { dockerfileBases } from "./dockerfile-bases.js";

describe("dockerfileBases", () => {
  it("names every FROM and every COPY --from that is an image, not one of the file's stages", () => {
    const text = [
      "# syntax comment",
      "FROM --platform=linux/amd64 python:3.12-slim AS build",
      "RUN pip install x",
      "FROM scratch",
      "COPY --from=build /app /app",
      "COPY --from=0 /x /x",
      "COPY --chown=1:1 --from=runyard-bot-victim:latest /secret /s",
      "ADD --from=ghcr.io/acme/tools:1 /bin/t /t",
    ].join("\n");
    expect(dockerfileBases(text)).toEqual({
      images: ["python:3.12-slim", "runyard-bot-victim:latest", "ghcr.io/acme/tools:1"],
      unresolved: [],
    });
  });

  it("fills variables from the ARG defaults before them, and says which it cannot fill", () => {
    const text = [
      "ARG BASE=runyard-bot-victim",
      'ARG TAG="latest"',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a Dockerfile's own variables
      "FROM ${BASE}:$TAG",
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a Dockerfile's own variables
      "FROM ${OTHER:-busybox}",
      "FROM $NOWHERE",
    ].join("\n");
    expect(dockerfileBases(text)).toEqual({
      images: ["runyard-bot-victim:latest", "busybox"],
      unresolved: ["$NOWHERE"],
    });
  });

  it("joins lines continued with a backslash and skips comments between them", () => {
    const text = ["FROM \\", "  # the base", "  node:20 \\", "  AS app", "COPY --from=app / /"].join("\n");
    expect(dockerfileBases(text)).toEqual({ images: ["node:20"], unresolved: [] });
  });
});
