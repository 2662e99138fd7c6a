import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isSecretName, MASK, SecretMasker, secretsFromEnv } from "./masking.js";

describe("secret masking", () => {
  it("replaces every occurrence of a secret value", () => {
    const masker = new SecretMasker(["hunter22"]);
    expect(masker.mask("pw=hunter22 again hunter22")).toBe(`pw=${MASK} again ${MASK}`);
  });

  it("masks a secret split across two output chunks", () => {
    const stream = new SecretMasker(["abcdef"]).stream();
    const out = stream.push("token ab") + stream.push("cdef done") + stream.flush();
    expect(out).toBe(`token ${MASK} done`);
  });

  it("does not hold back output that cannot start a secret", () => {
    const stream = new SecretMasker(["abcdef"]).stream();
    expect(stream.push("hello world\n")).toBe("hello world\n");
  });

  it("releases a held-back prefix when the secret does not follow", () => {
    const stream = new SecretMasker(["abcdef"]).stream();
    expect(stream.push("xx abc")).toBe("xx ");
    expect(stream.push("xyz")).toBe("abcxyz");
  });

  it("masks the longer of two overlapping secrets whole", () => {
    const masker = new SecretMasker(["abcd", "abcdefgh"]);
    expect(masker.mask("abcdefgh")).toBe(MASK);
  });

  it("ignores values too short to mask safely", () => {
    expect(new SecretMasker(["1", "ab"]).mask("1 ab")).toBe("1 ab");
  });

  it("takes secrets from env names ending in TOKEN, KEY, SECRET or PASSWORD", () => {
    expect(isSecretName("GITHUB_TOKEN")).toBe(true);
    expect(isSecretName("api_key")).toBe(true);
    expect(isSecretName("DB_PASSWORD")).toBe(true);
    expect(isSecretName("CLIENT_SECRET")).toBe(true);
    expect(isSecretName("MONKEY")).toBe(false);
    expect(isSecretName("TOKENIZER")).toBe(false);
    expect(secretsFromEnv({ A_TOKEN: "t0ken-value", HOME: "/root" })).toEqual(["t0ken-value"]);
  });

  it("masks strings deep inside objects", () => {
    const masker = new SecretMasker(["s3cr3t"]);
    expect(masker.maskDeep({ a: ["x s3cr3t"], b: { c: "s3cr3t" }, n: 1 })).toEqual({
      a: [`x ${MASK}`],
      b: { c: MASK },
      n: 1,
    });
  });

  it("never lets a secret through, however the output is chunked (property)", () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 4, maxLength: 12 }).filter((s) => !s.includes("*")),
        fc.array(fc.string({ maxLength: 8 }), { maxLength: 6 }),
        fc.array(fc.nat(40), { maxLength: 8 }),
        (secret, pieces, cuts) => {
          const text = pieces.join(secret);
          const stream = new SecretMasker([secret]).stream();
          const bounds = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
          let out = "";
          let last = 0;
          for (const cut of bounds) {
            out += stream.push(text.slice(last, cut));
            last = cut;
          }
          out += stream.push(text.slice(last)) + stream.flush();
          expect(out).toBe(new SecretMasker([secret]).mask(text));
        },
      ),
    );
  });
});
