import { randomInt } from "node:crypto";

/**
 * The soak's only source of chance: every choice (which member dies next, which workflow the
 * n-th run is) comes from a PRNG seeded once, so a seed printed at the start replays the same
 * victims in the same order and the same runs. Timing still depends on the machine.
 */
export interface SeededRandom {
  readonly seed: number;
  /** A float in [0, 1). */
  next(): number;
  /** One of `items`. */
  pick<T>(items: readonly T[]): T;
}

/** The seed in `RUNYARD_SOAK_SEED` (an unsigned 32-bit integer), or a fresh one. */
export function soakSeed(given = process.env.RUNYARD_SOAK_SEED): number {
  if (given === undefined || given === "") return randomInt(2 ** 32 - 1);
  const seed = Number(given);
  if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32) {
    throw new Error(
      `RUNYARD_SOAK_SEED=${given} is not an integer from 0 to 4294967295; unset it for a random seed`,
    );
  }
  return seed;
}

/** mulberry32: small, fast and good enough to pick victims; `stream` keeps separate uses apart. */
export function seededRandom(seed: number, stream = 0): SeededRandom {
  let state = (seed ^ Math.imul(stream + 1, 0x9e3779b9)) >>> 0;
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    seed,
    next,
    pick: <T>(items: readonly T[]): T => {
      const item = items[Math.floor(next() * items.length)];
      if (item === undefined) throw new Error("pick from an empty list");
      return item;
    },
  };
}
