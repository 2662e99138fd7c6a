import { createCipheriv, createDecipheriv, createHash } from "node:crypto";
import { RunyardError } from "../core/errors.js";
import { pooledRandomBytes } from "../core/random-pool.js";

/**
 * Encrypts the columns that may hold secrets (job payloads and results, run specs and vars,
 * artifacts' content) with AES-256-GCM. A sealed value is `enc1:` and the base64 of IV, tag and
 * ciphertext; a value without the prefix was stored before encryption and is read as it is.
 */
export interface ColumnCipher {
  seal(text: string): string;
  open(text: string): string;
}

const prefix = "enc1:";
const ivBytes = 12;
const tagBytes = 16;

/** For stores that never reach a disk (in memory): values stay as they are. */
export const plainColumns: ColumnCipher = { seal: (text) => text, open: (text) => text };

/** Whether a stored value was sealed (so a key check has something to try). */
export function isSealed(text: string): boolean {
  return text.startsWith(prefix);
}

/** A cipher keyed by `secretKey` (any text; its SHA-256 is the AES key). */
export function aesGcmColumns(secretKey: string): ColumnCipher {
  const key = createHash("sha256").update(secretKey, "utf8").digest();
  return {
    seal(text) {
      const iv = pooledRandomBytes(ivBytes);
      const cipher = createCipheriv("aes-256-gcm", key, iv);
      const body = Buffer.concat([cipher.update(text, "utf8"), cipher.final()]);
      return prefix + Buffer.concat([iv, cipher.getAuthTag(), body]).toString("base64");
    },
    open(text) {
      if (!isSealed(text)) return text;
      const raw = Buffer.from(text.slice(prefix.length), "base64");
      try {
        const decipher = createDecipheriv("aes-256-gcm", key, raw.subarray(0, ivBytes));
        decipher.setAuthTag(raw.subarray(ivBytes, ivBytes + tagBytes));
        return Buffer.concat([decipher.update(raw.subarray(ivBytes + tagBytes)), decipher.final()]).toString(
          "utf8",
        );
      } catch (error) {
        throw new RunyardError(
          "SECRET_KEY_MISMATCH",
          "stored data cannot be decrypted with this secret key",
          { cause: error },
        );
      }
    },
  };
}
