/**
 * A step's `matrix:` as its combinations, as GitHub Actions does it: the axes' product less what an
 * `exclude` matches, then each `include` added to the combinations it fits, or as one of its own.
 */
import type { MatrixInstance } from "./model.js";

/** The most combinations one matrix step may run (GitHub Actions' limit too). */
export const matrixLimit = 256;

/** Refused unwalked past this many: no excludes a person writes bring so many combinations to the limit. */
const walkLimit = 65_536;

export interface MatrixSpec {
  /** Each axis and its values, in the file's order: the first varies slowest. */
  axes: [string, string[]][];
  exclude: Record<string, string>[];
  include: Record<string, string>[];
}

export type MatrixExpansion =
  | { combinations: Record<string, string>[] }
  /** More than `limit` combinations; `count` is how many, or at least how many. */
  | { tooMany: { count: number; atLeast: boolean } };

/** The combinations of a matrix, or how far past `limit` it goes; never builds more than `limit + 1`. */
export function expandMatrix(spec: MatrixSpec, limit = matrixLimit): MatrixExpansion {
  const product = spec.axes.reduce((count, [, values]) => count * values.length, 1);
  if (product > walkLimit) return { tooMany: { count: product, atLeast: false } };
  const original: Record<string, string>[] = [];
  const axisNames = new Set(spec.axes.map(([name]) => name));
  if (spec.axes.length > 0 && product > 0) {
    const digits = spec.axes.map(() => 0);
    for (let n = 0; n < product; n++) {
      const combination: Record<string, string> = {};
      spec.axes.forEach(([name, values], axis) => {
        combination[name] = values[digits[axis] ?? 0] ?? "";
      });
      if (!spec.exclude.some((entry) => matches(combination, entry))) {
        original.push(combination);
        if (original.length > limit) return { tooMany: { count: original.length, atLeast: true } };
      }
      // The odometer: the last axis turns fastest.
      for (let axis = spec.axes.length - 1; axis >= 0; axis--) {
        const size = spec.axes[axis]?.[1].length ?? 1;
        digits[axis] = ((digits[axis] ?? 0) + 1) % size;
        if (digits[axis] !== 0) break;
      }
    }
  }
  const combinations = original.map((combination) => ({ ...combination }));
  for (const entry of spec.include) {
    let fitted = false;
    original.forEach((combination, i) => {
      // An include never changes a value of the axes; values it added itself it may.
      const fits = Object.entries(entry).every(
        ([name, value]) => !axisNames.has(name) || combination[name] === value,
      );
      if (!fits) return;
      fitted = true;
      Object.assign(combinations[i] ?? {}, entry);
    });
    if (!fitted) {
      combinations.push({ ...entry });
      if (combinations.length > limit) {
        return { tooMany: { count: original.length + spec.include.length, atLeast: true } };
      }
    }
  }
  return { combinations };
}

function matches(combination: Record<string, string>, entry: Record<string, string>): boolean {
  return Object.entries(entry).every(([name, value]) => combination[name] === value);
}

/** `test (NODE=18, OS=a)`: what events, summaries and the CLI call one combination. */
export function matrixInstanceName(step: string, vars: Record<string, string>): string {
  return `${step} (${Object.entries(vars)
    .map(([name, value]) => `${name}=${shortValue(value)}`)
    .join(", ")})`;
}

/** A value as a combination's name shows it: up to 40 characters, one line. */
function shortValue(value: string): string {
  const line = value.replace(/\s+/g, " ");
  return line.length > 40 ? `${line.slice(0, 39)}…` : line;
}

export function matrixInstances(step: string, combinations: Record<string, string>[]): MatrixInstance[] {
  const seen = new Map<string, number>();
  return combinations.map((vars) => {
    // Values alike in their first 40 characters would share a name: the later ones are numbered.
    const name = matrixInstanceName(step, vars);
    const times = (seen.get(name) ?? 0) + 1;
    seen.set(name, times);
    return { name: times === 1 ? name : `${name} #${times}`, vars };
  });
}
