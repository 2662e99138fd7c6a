import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { signatureMatches, signBody } from "./hook-signature.js";

const secret = "s3cret-of-the-hook-0123456789";
const body = Buffer.from('{"ref":"refs/heads/main"}');
const good = `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;

describe("a delivery's signature", () => {
  it("matches the HMAC-SHA256 of the raw body in GitHub's form", () => {
    expect(signBody(secret, body)).toBe(good);
    expect(signatureMatches(secret, body, good)).toBe(true);
    expect(signatureMatches(secret, body, `sha256=${good.slice(7).toUpperCase()}`)).toBe(true);
  });

  it("is refused when missing, empty or of another form", () => {
    for (const header of [undefined, "", "sha256=", "sha1=abc", good.slice(7), `sha512=${good.slice(7)}`]) {
      expect(signatureMatches(secret, body, header), String(header)).toBe(false);
    }
  });

  it("is refused at the wrong length, one hex digit short or long", () => {
    expect(signatureMatches(secret, body, good.slice(0, -1))).toBe(false);
    expect(signatureMatches(secret, body, `${good}0`)).toBe(false);
    expect(signatureMatches(secret, body, "sha256=zz")).toBe(false);
  });

  it("is refused for another body, another secret or one changed digit", () => {
    expect(signatureMatches(secret, Buffer.from('{"ref":"refs/heads/evil"}'), good)).toBe(false);
    expect(signatureMatches(`${secret}x`, body, good)).toBe(false);
    const flipped = `${good.slice(0, -1)}${good.endsWith("0") ? "1" : "0"}`;
    expect(signatureMatches(secret, body, flipped)).toBe(false);
  });

  it("covers the bytes as sent: re-serialised JSON does not match", () => {
    const spaced = Buffer.from('{ "ref": "refs/heads/main" }');
    expect(signatureMatches(secret, spaced, good)).toBe(false);
  });
});
