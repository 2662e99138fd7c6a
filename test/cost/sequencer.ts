import { readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { BaseSequencer, type TestSpecification } from "vitest/node";

/** Each file's seconds in the last cost map (`npm run test:cost:docs` writes it), by `project:file`. */
export const secondsFile = "test/cost/seconds.json";

/**
 * The order files start in: the longest first, by the seconds the last cost map gave them, the unit
 * and integration files mixed. Vitest's own order puts each project's files after the other
 * project's, and sorts them by its cache of the last run's times, which a fresh clone (CI) lacks,
 * or else by size: there the unit files ran last, in the final 70 s of a run, one core idle while
 * their waits (a walk raced against a swapped folder, PostgreSQL's tests) went by, and a long
 * integration file of few lines could start last and run alone. A file the map does not know (a
 * new one) goes first, as vitest runs unknown files first; the groups still go in their order.
 */
export default class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const byVitest = await super.sort(files);
    const place = new Map(byVitest.map((spec, index) => [spec, index]));
    const seconds = lastSeconds(this.ctx.config.root);
    const key = (spec: TestSpecification) =>
      seconds[`${spec.project.name}:${relative(this.ctx.config.root, spec.moduleId)}`] ??
      Number.POSITIVE_INFINITY;
    const longer = (a: number, b: number) => (a === b ? 0 : a > b ? -1 : 1);
    return byVitest.sort(
      (a, b) =>
        a.project.config.sequence.groupOrder - b.project.config.sequence.groupOrder ||
        longer(key(a), key(b)) ||
        place.get(a)! - place.get(b)!,
    );
  }
}

function lastSeconds(root: string): Record<string, number> {
  try {
    return JSON.parse(readFileSync(join(root, secondsFile), "utf8")) as Record<string, number>;
  } catch {
    return {};
  }
}
