/** The graph keys (`depends`, `matrix`, `rollback`) and the checks needing every step (names, cycles). */
import { isMap, isScalar, isSeq, type YAMLMap } from "yaml";
import { expandMatrix, type MatrixSpec, matrixInstances, matrixLimit } from "./matrix.js";
import type { Step, StepDependency, StepMatrix, StepRollback } from "./model.js";
import { suggestionHint } from "./suggest.js";
import { type Fields, isVariableName, variableNameHint, type YamlReader } from "./yaml-reader.js";

/** Reads a `rollback:` mapping's action and args the way a step's own are read. */
export type RollbackBodyReader = (map: YAMLMap, label: string) => StepRollback;

/** The graph keys of one step, present only when the file has them. */
export function readGraphKeys(
  reader: YamlReader,
  fields: Fields,
  label: string,
  name: string,
  readRollbackBody: RollbackBodyReader | undefined,
): Pick<Step, "depends" | "matrix" | "rollback"> {
  const keys: Pick<Step, "depends" | "matrix" | "rollback"> = {};
  const depends = fields.get("depends");
  if (depends) keys.depends = readDepends(reader, depends.value, label);
  const matrix = fields.get("matrix");
  const failFast = fields.get("fail_fast");
  // Playbook steps read fail_fast as the opposite of continue_on_error; only the action form gets here.
  const cancelsOthers =
    failFast && readRollbackBody ? reader.boolean(failFast.value, `fail_fast of ${label}`) : undefined;
  if (matrix) {
    const read = readMatrix(reader, matrix.value, label, name);
    if (read) keys.matrix = { ...read, failFast: cancelsOthers ?? false };
  } else if (failFast && readRollbackBody) {
    reader.report(
      failFast.key,
      `fail_fast of ${label} applies to a matrix step: it cancels the other combinations when one fails`,
      "to let the run go on after this step fails, write continue_on_error: true",
    );
  }
  const rollback = fields.get("rollback");
  if (rollback && readRollbackBody) {
    const map = reader.mapping(rollback.value, `rollback of ${label}`);
    if (map) keys.rollback = readRollbackBody(map, `rollback of ${label}`);
  }
  return keys;
}

function readDepends(reader: YamlReader, node: unknown, label: string): StepDependency[] {
  const names = reader.stringList(node, `depends of ${label}`) ?? [];
  const items = isSeq(node) ? node.items : [node];
  const depends: StepDependency[] = [];
  names.forEach((step, i) => {
    const item = reader.deref(items[i]);
    if (names.indexOf(step) !== i) reader.report(item, `${label} lists "${step}" twice in depends`);
    else depends.push({ step, pos: reader.pos(item) });
  });
  return depends;
}

function readMatrix(
  reader: YamlReader,
  node: unknown,
  label: string,
  name: string,
): Omit<StepMatrix, "failFast"> | undefined {
  const map = reader.mapping(node, `matrix of ${label}`);
  if (!map) return undefined;
  const where = `matrix of ${label}`;
  const spec: MatrixSpec = { axes: [], exclude: [], include: [] };
  let valid = true;
  let excludeNode: unknown;
  for (const pair of map.items) {
    const key = reader.deref(pair.key);
    const value = reader.deref(pair.value);
    const axis = isScalar(key) ? String(key.value) : "";
    if (axis === "include" || axis === "exclude") {
      const entries = readEntries(reader, value, `${axis} of ${where}`);
      if (!entries) valid = false;
      else spec[axis] = entries;
      if (axis === "exclude") excludeNode = value;
      continue;
    }
    if (!isVariableName(axis)) {
      reader.report(key, `"${axis}" in ${where} is not a valid variable name`, variableNameHint);
      valid = false;
      continue;
    }
    const values = readAxis(reader, value, `${axis} of ${where}`);
    if (values) spec.axes.push([axis, values]);
    else valid = false;
  }
  if (!valid) return undefined;
  if (spec.axes.length === 0 && spec.include.length === 0) {
    reader.report(map, `${where} has no axes`, "add an axis: NAME: [value, ...]");
    return undefined;
  }
  if (!checkExcludes(reader, spec, excludeNode, where)) return undefined;
  const expansion = expandMatrix(spec);
  if ("tooMany" in expansion) {
    const { count, atLeast } = expansion.tooMany;
    const sizes = spec.axes.map(([, values]) => values.length).join(" x ");
    reader.report(
      map,
      `${where} makes ${atLeast ? "more than " : ""}${atLeast ? matrixLimit : count} combinations${atLeast ? "" : ` (${sizes})`}; a matrix may make at most ${matrixLimit}`,
      "split the step into several, or leave combinations out with exclude:",
    );
    return undefined;
  }
  if (expansion.combinations.length === 0) {
    reader.report(map, `${where} leaves no combination to run`, "exclude fewer combinations");
    return undefined;
  }
  return { instances: matrixInstances(name, expansion.combinations) };
}

function readAxis(reader: YamlReader, node: unknown, label: string): string[] | undefined {
  if (!isSeq(node)) {
    reader.report(node, `${label} must be a list of values, got ${describeShape(node)}`);
    return undefined;
  }
  if (node.items.length === 0) {
    reader.report(node, `${label} is empty`, "give the axis at least one value, or remove it");
    return undefined;
  }
  const values: string[] = [];
  for (const [i, item] of node.items.entries()) {
    const value = reader.text(reader.deref(item), `${label}[${i}]`);
    if (value === undefined) return undefined;
    if (values.includes(value)) {
      reader.report(reader.deref(item), `${label} lists "${value}" twice`);
      return undefined;
    }
    values.push(value);
  }
  return values;
}

/** `include:` / `exclude:`: a list of mappings of variable names to values. */
function readEntries(reader: YamlReader, node: unknown, label: string): Record<string, string>[] | undefined {
  if (!isSeq(node)) {
    reader.report(node, `${label} must be a list of mappings, got ${describeShape(node)}`);
    return undefined;
  }
  const entries: Record<string, string>[] = [];
  for (const [i, item] of node.items.entries()) {
    const entry = reader.variableMap(reader.deref(item), `${label}[${i}]`);
    if (!entry) return undefined;
    entries.push(entry);
  }
  return entries;
}

/** An exclude that names an axis or a value the matrix does not have is a typo, not a no-op. */
function checkExcludes(reader: YamlReader, spec: MatrixSpec, node: unknown, where: string): boolean {
  const axes = new Map(spec.axes);
  let valid = true;
  spec.exclude.forEach((entry, i) => {
    const item = isSeq(node) ? reader.deref(node.items[i]) : node;
    for (const [axis, value] of Object.entries(entry)) {
      const values = axes.get(axis);
      if (!values) {
        reader.report(
          item,
          `exclude of ${where} names "${axis}", which is not an axis of the matrix`,
          suggestionHint(axis, [...axes.keys()], "axes"),
        );
        valid = false;
      } else if (!values.includes(value)) {
        reader.report(
          item,
          `exclude of ${where}: ${axis}=${value} is not a value of ${axis}`,
          `values of ${axis}: ${values.join(", ")}`,
        );
        valid = false;
      }
    }
  });
  return valid;
}

function describeShape(node: unknown): string {
  if (isMap(node)) return "a mapping";
  if (isSeq(node)) return "a list";
  return node === null || (isScalar(node) && node.value === null) ? "nothing" : "a single value";
}

/**
 * What only all the steps can tell: each `depends` names a step, no two wait for each other, and no
 * matrix combination takes another step's name.
 */
export function checkStepGraph(reader: YamlReader, steps: Step[]): void {
  const byName = new Map(steps.map((step) => [step.name, step]));
  for (const step of steps) {
    for (const instance of step.matrix?.instances ?? []) {
      if (byName.has(instance.name)) {
        reader.reportAt(
          step.pos,
          `matrix of step "${step.name}" names a combination "${instance.name}", as another step is named`,
        );
      }
    }
    for (const dependency of step.depends ?? []) {
      if (byName.has(dependency.step)) continue;
      const others = steps.map((s) => s.name).filter((n) => n !== step.name && n !== "");
      reader.reportAt(
        dependency.pos,
        `step "${step.name}" depends on "${dependency.step}", which is not a step of this file`,
        others.length > 0
          ? suggestionHint(dependency.step, others, "steps")
          : "remove it: the file has no other step",
      );
    }
  }
  for (const cycle of dependencyCycles(steps)) {
    const first = byName.get(cycle[0] ?? "");
    const closing = first?.depends?.find((d) => d.step === cycle[1]);
    reader.reportAt(
      closing?.pos ?? first?.pos ?? { line: 1, col: 1 },
      `steps depend on each other in a cycle: ${spelledCycle(cycle)}`,
      "a step waits for the steps it depends on; remove one of these depends",
    );
  }
}

/** How many steps of a cycle a message names before it says how many more there are. */
const cycleNamesShown = 20;

/** `a -> b -> c -> a`; a long cycle names its first steps, how many it leaves out, and its end. */
function spelledCycle(cycle: string[]): string {
  if (cycle.length <= cycleNamesShown + 2) return cycle.join(" -> ");
  const left = cycle.length - 1 - cycleNamesShown;
  return `${cycle.slice(0, cycleNamesShown).join(" -> ")} -> ... (${left} more steps) -> ${cycle.at(-1)}`;
}

/**
 * Each `depends` cycle from its first step in file order back to it (`a -> b -> a`: a depends on b), one
 * per group of steps waiting on each other, so a tangle is one message, not dozens.
 */
export function dependencyCycles(steps: Pick<Step, "name" | "depends">[]): string[][] {
  const edges = new Map(steps.map((step) => [step.name, (step.depends ?? []).map((d) => d.step)]));
  const components = stronglyConnected(
    steps.map((s) => s.name),
    (name) => edges.get(name) ?? [],
  );
  const cycles: string[][] = [];
  for (const component of components) {
    const members = new Set(component);
    const start = steps.find((s) => members.has(s.name))?.name;
    if (start === undefined) continue;
    const selfLoop = (edges.get(start) ?? []).includes(start);
    if (component.length === 1 && !selfLoop) continue;
    cycles.push(selfLoop ? [start, start] : pathBack(start, members, edges));
  }
  return cycles;
}

/** The first path from `start` back to it inside one strongly connected group. */
function pathBack(start: string, members: Set<string>, edges: Map<string, string[]>): string[] {
  const previous = new Map<string, string>();
  const queue = [start];
  while (queue.length > 0) {
    const at = queue.shift() as string;
    for (const next of edges.get(at) ?? []) {
      if (!members.has(next)) continue;
      if (next === start) {
        const path = [at];
        for (let p = previous.get(at); p !== undefined; p = previous.get(p)) path.unshift(p);
        return [...(path[0] === start ? path : [start, ...path]), start];
      }
      if (previous.has(next)) continue;
      previous.set(next, at);
      queue.push(next);
    }
  }
  return [start, start];
}

/** Tarjan's strongly connected components, without recursion (a long chain must not blow the stack). */
function stronglyConnected(nodes: string[], next: (node: string) => string[]): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const components: string[][] = [];
  const known = new Set(nodes);
  const targetsOf = (node: string): string[] => next(node).filter((t) => known.has(t));
  let counter = 0;
  for (const root of nodes) {
    if (index.has(root)) continue;
    const work: { node: string; edge: number; targets: string[] }[] = [
      { node: root, edge: 0, targets: targetsOf(root) },
    ];
    index.set(root, counter);
    low.set(root, counter++);
    stack.push(root);
    onStack.add(root);
    while (work.length > 0) {
      const frame = work[work.length - 1] as { node: string; edge: number; targets: string[] };
      if (frame.edge < frame.targets.length) {
        const target = frame.targets[frame.edge++] as string;
        if (!index.has(target)) {
          index.set(target, counter);
          low.set(target, counter++);
          stack.push(target);
          onStack.add(target);
          work.push({ node: target, edge: 0, targets: targetsOf(target) });
        } else if (onStack.has(target)) {
          low.set(frame.node, Math.min(low.get(frame.node) ?? 0, index.get(target) ?? 0));
        }
        continue;
      }
      work.pop();
      const parent = work[work.length - 1];
      if (parent) low.set(parent.node, Math.min(low.get(parent.node) ?? 0, low.get(frame.node) ?? 0));
      if (low.get(frame.node) === index.get(frame.node)) {
        const component: string[] = [];
        let member: string | undefined;
        do {
          member = stack.pop();
          if (member === undefined) break;
          onStack.delete(member);
          component.push(member);
        } while (member !== frame.node);
        components.push(component);
      }
    }
  }
  return components;
}
