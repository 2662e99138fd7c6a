import { readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { BaseSequencer, type TestSpecification } from "vitest/node";

/** Each file's seconds in the last cost map (`npm run test:cost:docs` writes it), by `project:file`. */
export const secondsFile = "test/cost/seconds.json";

/**
 * The order files start in. Vitest runs the projects of a group one after the other, by name: the
 * unit files after every integration file, so the last 70 s of a run were the unit files' own
 * waits (a walk raced against a swapped folder, PostgreSQL's tests) on about one core. Here the
 * project whose files took less time in the last cost map goes first, its longest files first, so
 * the other project's files fill the cores its waits leave; the longer project keeps vitest's own
 * order (its cache of the last run, or the files' sizes in a fresh clone). Putting every project's
 * longest files first made a run slower instead: the agent, Kubernetes and replica files, all at
 * once at the start, took 10 to 35% longer each (802 s against 702 to 736).
 *
 * One exception in the longer project's own order: a file that took `longFileSeconds` or more in
 * the last map starts before files that took `latestLongStart` of the project's seconds have. In
 * a fresh clone vitest orders by size, and a small file that runs long (the chaos soak: 17 s)
 * started last and ran alone at the end, a core idle (s91a, 2026-12-03). By count (70% of the
 * files) was too late: the last files are the short ones, and a 35 s file started 100 s before
 * the end (s91b).
 */
const longFileSeconds = 15;
const latestLongStart = 0.5;

export default class ShortProjectFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const byVitest = await super.sort(files);
    const place = new Map(byVitest.map((spec, index) => [spec, index]));
    const seconds = lastSeconds(this.ctx.config.root);
    const fileSeconds = (spec: TestSpecification) =>
      seconds[`${spec.project.name}:${relative(this.ctx.config.root, spec.moduleId)}`] ?? 0;
    // Each group's projects by their files' seconds; the shortest of each group goes first.
    const projectSeconds = new Map<string, { group: number; seconds: number }>();
    for (const spec of byVitest) {
      const project = projectSeconds.get(spec.project.name);
      const group = spec.project.config.sequence.groupOrder;
      projectSeconds.set(spec.project.name, { group, seconds: (project?.seconds ?? 0) + fileSeconds(spec) });
    }
    const shortest = new Set<string>();
    for (const group of new Set([...projectSeconds.values()].map((project) => project.group))) {
      const inGroup = [...projectSeconds].filter(([, project]) => project.group === group);
      if (inGroup.length > 1) shortest.add(inGroup.sort((a, b) => a[1].seconds - b[1].seconds)[0]![0]);
    }
    // Within its project: where vitest put it, or no later than `latestLongStart` when it runs long.
    const inProject = new Map<TestSpecification, number>();
    for (const [name, project] of projectSeconds) {
      const specs = byVitest.filter((spec) => spec.project.name === name);
      let before = 0;
      let latest = specs.length;
      for (const [index, spec] of specs.entries()) {
        if (before >= project.seconds * latestLongStart) {
          latest = index;
          break;
        }
        before += fileSeconds(spec);
      }
      for (const [index, spec] of specs.entries())
        inProject.set(spec, fileSeconds(spec) >= longFileSeconds ? Math.min(index, latest) : index);
    }
    const rank = (spec: TestSpecification): number[] => {
      const first = shortest.has(spec.project.name);
      return [
        spec.project.config.sequence.groupOrder,
        first ? 0 : 1,
        first ? -fileSeconds(spec) : 0,
        inProject.get(spec)!,
        place.get(spec)!,
      ];
    };
    const ranks = new Map(byVitest.map((spec) => [spec, rank(spec)]));
    return byVitest.sort((a, b) => {
      const [x, y] = [ranks.get(a)!, ranks.get(b)!];
      const at = x.findIndex((value, index) => value !== y[index]);
      return at === -1 ? 0 : x[at]! - y[at]!;
    });
  }
}

function lastSeconds(root: string): Record<string, number> {
  try {
    return JSON.parse(readFileSync(join(root, secondsFile), "utf8")) as Record<string, number>;
  } catch {
    return {};
  }
}
