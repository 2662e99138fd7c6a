import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { cpuPacedMs, cpuTimed } from "../../test/helpers/machine-pace.js";
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

  it("masks with each masker's own secrets where automata are shared between maskers", () => {
    // Built first, kept for maskers of the same secrets: one secret holding both values and a NUL.
    const joined = new SecretMasker(["alpha-secret\u0000beta-secret"]);
    expect(joined.mask("alpha-secret")).toBe("alpha-secret");
    const apart = new SecretMasker(["alpha-secret", "beta-secret"]);
    expect(apart.mask("a alpha-secret b beta-secret")).toBe(`a ${MASK} b ${MASK}`);
    const again = new SecretMasker(["alpha-secret", "beta-secret"]);
    expect(again.mask("beta-secret")).toBe(MASK);
    again.add(["gamma-secret"]);
    expect(again.mask("gamma-secret beta-secret")).toBe(`${MASK} ${MASK}`);
    expect(apart.mask("gamma-secret")).toBe("gamma-secret");
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

  it("never lets any of several secrets through, however the output is chunked (property)", () => {
    const secretText = fc.string({ minLength: 4, maxLength: 10, unit: fc.constantFrom("a", "b", "c", "d") });
    fc.assert(
      fc.property(
        fc.array(secretText, { minLength: 1, maxLength: 4 }),
        fc.array(fc.string({ maxLength: 6, unit: fc.constantFrom("a", "b", "c", "x") }), { maxLength: 8 }),
        fc.array(fc.nat(80), { maxLength: 10 }),
        (secrets, pieces, cuts) => {
          const text = pieces.map((piece, i) => piece + (secrets[i % secrets.length] ?? "")).join("");
          const whole = new SecretMasker(secrets).mask(text);
          for (const secret of secrets) expect(whole).not.toContain(secret);
          const stream = new SecretMasker(secrets).stream();
          const bounds = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
          let out = "";
          let last = 0;
          for (const cut of bounds) {
            out += stream.push(text.slice(last, cut));
            last = cut;
          }
          out += stream.push(text.slice(last)) + stream.flush();
          expect(out).toBe(whole);
        },
      ),
    );
  });

  it("masks the union of overlapping occurrences with one mask", () => {
    expect(new SecretMasker(["abcd", "cdef"]).mask("xabcdefx")).toBe(`x${MASK}x`);
    expect(new SecretMasker(["abab"]).mask("ababab")).toBe(MASK);
    expect(new SecretMasker(["abcd"]).mask("abcdabcd")).toBe(`${MASK}${MASK}`);
  });

  it("masks a secret added while the stream holds back its start", () => {
    const masker = new SecretMasker(["s3cr3t-other"]);
    const stream = masker.stream();
    let out = stream.push("token: s3cr");
    masker.add(["s3cr3t-value"]);
    out += stream.push("3t-value and s3cr3t-value again\n") + stream.flush();
    expect(out).toBe(`token: ${MASK} and ${MASK} again\n`);
  });

  it("masks a 100 KB secret and passes near-miss output through in linear time", () => {
    const secret = Array.from({ length: 100_000 }, (_, i) =>
      String.fromCharCode(97 + ((i * 7919) % 26)),
    ).join("");
    const nearMiss = secret.slice(0, -1);
    const stream = new SecretMasker([secret, "short-secret"]).stream();
    const { value: out, cpuMs } = cpuTimed(() => {
      let masked = "";
      for (let i = 0; i < 50; i++) masked += stream.push(nearMiss);
      masked += stream.push(`\n${secret}\n`);
      for (let i = 0; i < 60_000; i++) masked += stream.push(nearMiss[i]!);
      return masked + stream.flush();
    });
    expect(out).toBe(`${nearMiss.repeat(50)}\n${MASK}\n${nearMiss.slice(0, 60_000)}`);
    // About 5 MB; the quadratic masker took minutes here, a linear one takes milliseconds.
    expect(cpuMs).toBeLessThan(cpuPacedMs(2000));
  });
});
