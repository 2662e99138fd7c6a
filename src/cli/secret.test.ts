import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { readValue } from "./secret.js";

const piped = (text: string) => Readable.from([Buffer.from(text)]);

describe("runyard secret set reads the value from stdin", () => {
  it("refuses a terminal, saying how to pipe the value in", async () => {
    const terminal = Object.assign(Readable.from([]), { isTTY: true });
    await expect(readValue(terminal)).rejects.toMatchObject({
      code: "USAGE",
      message: expect.stringContaining("stdin is a terminal"),
      hint: expect.stringContaining('printf %s "$VALUE" | runyard secret set NAME'),
    });
  });

  it("drops the one newline `echo value |` adds to a one-line value", async () => {
    expect(await readValue(piped("s3cret-value\n"))).toBe("s3cret-value");
    expect(await readValue(piped("s3cret-value\r\n"))).toBe("s3cret-value");
    expect(await readValue(piped("s3cret-value"))).toBe("s3cret-value");
    expect(await readValue(piped("s3cret-value\n\n"))).toBe("s3cret-value\n\n");
  });

  it("keeps a multi-line value (a key file) byte for byte", async () => {
    const key = "-----BEGIN KEY-----\nabc\n-----END KEY-----\n";
    expect(await readValue(piped(key))).toBe(key);
  });

  it("refuses an empty stdin", async () => {
    await expect(readValue(piped(""))).rejects.toMatchObject({ code: "USAGE", message: "no value on stdin" });
    await expect(readValue(piped("\n"))).rejects.toMatchObject({ code: "USAGE" });
  });
});
