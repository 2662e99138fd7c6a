import { randomBytes } from "node:crypto";
import { hash, verify } from "@node-rs/argon2";
import { RunyardError } from "../../core/errors.js";

/** `Algorithm.Argon2id` of @node-rs/argon2, a const enum (which isolated modules cannot import). */
const argon2id = 2;

/**
 * argon2id with OWASP's first recommended setting (19 MiB, 2 passes, 1 lane): about 30 ms of
 * one core per check, which is what makes guessing slow even past the login rate limit.
 */
const argon2Options = { algorithm: argon2id, memoryCost: 19_456, timeCost: 2, parallelism: 1 };

/** Longer passwords than this are refused before hashing: hashing a megabyte is a denial of service. */
export const maxPasswordLength = 1024;

export function checkPassword(password: string): void {
  if (password.length === 0) throw new RunyardError("INVALID_INPUT", "the password is empty");
  if (password.length > maxPasswordLength) {
    throw new RunyardError("INVALID_INPUT", `the password is longer than ${maxPasswordLength} characters`);
  }
}

export async function hashPassword(password: string): Promise<string> {
  checkPassword(password);
  return hash(password, argon2Options);
}

/** A password for `user add` / `user passwd` when none is given: 144 random bits, url-safe. */
export function newPassword(): string {
  return randomBytes(18).toString("base64url");
}

let dummyHash: Promise<string> | undefined;

/**
 * Checks a password against a user's hash, or against a dummy hash when there is no such user,
 * so an unknown name takes as long to refuse as a wrong password.
 */
export async function passwordMatches(storedHash: string | undefined, password: string): Promise<boolean> {
  if (password.length > maxPasswordLength) return false;
  dummyHash ??= hash(randomBytes(16).toString("hex"), argon2Options);
  const against = storedHash ?? (await dummyHash);
  try {
    const ok = await verify(against, password);
    return ok && storedHash !== undefined;
  } catch {
    return false;
  }
}
