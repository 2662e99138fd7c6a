import { randomFillSync } from "node:crypto";

/**
 * Random bytes for the ids and IVs every run needs (a run id, four sealed columns), taken from a
 * pool the operating system's generator fills 4 KiB at a time, as Node's own `randomUUID` takes
 * them: one `getrandom` for every few hundred values rather than one each. They are as
 * unpredictable as `randomBytes`' own, and each is handed out once.
 */
const POOL_BYTES = 4096;
const pool = Buffer.alloc(POOL_BYTES);
let used = POOL_BYTES;

/** `length` random bytes (at most 4 KiB), a copy of their own. */
export function pooledRandomBytes(length: number): Buffer {
  if (length > POOL_BYTES)
    throw new RangeError(`pooledRandomBytes: ${length} bytes asked, at most ${POOL_BYTES}`);
  if (used + length > POOL_BYTES) {
    randomFillSync(pool);
    used = 0;
  }
  const bytes = Buffer.from(pool.subarray(used, used + length));
  // Zeroed as taken: the pool keeps no byte it has handed out.
  pool.fill(0, used, used + length);
  used += length;
  return bytes;
}
