import { createHash, createHmac, timingSafeEqual } from "node:crypto";

/** The header GitHub signs a delivery's body in: `sha256=` and the HMAC-SHA256 in hex. */
export const signatureHeader = "x-hub-signature-256";
const signaturePattern = /^sha256=([0-9a-fA-F]{64})$/;

/** The header value a sender computes for `body` with `secret` (what GitHub sends). */
export function signBody(secret: string, body: Buffer | string): string {
  return `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;
}

/** Compares two secrets in a time that tells nothing of where they differ, or of their lengths. */
export function secretMatches(given: string, expected: string): boolean {
  const digest = (value: string) => createHash("sha256").update(value, "utf8").digest();
  return timingSafeEqual(digest(given), digest(expected));
}

/**
 * Whether `header` is `sha256=<HMAC-SHA256 of the raw body under secret>`. The digests are
 * compared in constant time; a header of the wrong form or length is compared against the
 * expected digest too (as 32 bytes of something else), so its shape does not change the time
 * either, and is refused.
 */
export function signatureMatches(secret: string, body: Buffer, header: string | undefined): boolean {
  const expected = createHmac("sha256", secret).update(body).digest();
  const given = header === undefined ? undefined : signaturePattern.exec(header.trim())?.[1];
  const candidate = given === undefined ? Buffer.alloc(expected.length) : Buffer.from(given, "hex");
  return timingSafeEqual(candidate, expected) && given !== undefined;
}
