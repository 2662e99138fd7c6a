import { randomBytes } from "node:crypto";
import { pooledRandomBytes } from "./random-pool.js";

const alphabet = "0123456789abcdefghjkmnpqrstvwxyz";

function encodeTime(ms: number): string {
  let out = "";
  let rest = ms;
  for (let i = 0; i < 10; i++) {
    out = alphabet[rest % 32] + out;
    rest = Math.floor(rest / 32);
  }
  return out;
}

function randomPart(length: number): string {
  const bytes = pooledRandomBytes(length);
  let out = "";
  for (const byte of bytes) out += alphabet[byte % 32];
  return out;
}

/** Time-ordered ids: sorting them as strings sorts them by creation time. */
export function newId(prefix: string): string {
  return `${prefix}_${encodeTime(Date.now())}${randomPart(10)}`;
}

export const newRunId = (): string => newId("run");
export const newTaskId = (): string => newId("task");

/** A secret string for tokens: 32 random bytes, url-safe. */
export function newSecret(prefix: string): string {
  return `${prefix}_${randomBytes(32).toString("base64url")}`;
}
