/**
 * `on:`: the steps a run runs once its outcome is known, after its rollbacks:
 * `on: {success: [...], failure: [...], cancel: [...], exit: [...]}`, each a list of steps of the
 * usual forms, run in order. They read `${RUN_STATUS}`, `${FAILED_STEP}` and the run's variables.
 */
import { isSeq } from "yaml";
import { handlerOutcomes, type RunHandlers, type Step } from "./model.js";
import type { Inventory } from "./parse-hosts.js";
import { readSteps } from "./parse-steps.js";
import type { YamlReader } from "./yaml-reader.js";

export function readHandlers(
  reader: YamlReader,
  node: unknown,
  inventory: Inventory | undefined,
): RunHandlers {
  const map = reader.mapping(node, "on");
  const handlers: RunHandlers = {};
  if (!map) return handlers;
  const fields = reader.fields(map, "in on", handlerOutcomes, (key) =>
    key === "failed" || key === "error"
      ? 'a failed (or timed out) run runs "failure"'
      : key === "canceled" || key === "cancelled"
        ? 'a canceled run runs "cancel"'
        : key === "always" || key === "finally"
          ? 'steps that run whatever the outcome go under "exit"'
          : undefined,
  );
  for (const outcome of handlerOutcomes) {
    const field = fields.get(outcome);
    if (!field) continue;
    if (!isSeq(field.value)) {
      reader.report(field.value, `on.${outcome} must be a list of steps`);
      continue;
    }
    const steps = readSteps(reader, field, inventory);
    for (const step of steps) refuseInHandler(reader, step, outcome);
    handlers[outcome] = steps;
  }
  return handlers;
}

/** What a handler step may not have, and what to do instead. */
const refusedInHandler: ReadonlyArray<[(step: Step) => unknown, string, string]> = [
  [
    (step) => step.depends !== undefined,
    "has depends",
    "handler steps run one after another in file order: remove depends",
  ],
  [
    (step) => step.action === "approval",
    "is an approval",
    "the run's outcome is known when handlers run; ask for approval in a step of the run",
  ],
  [(step) => step.matrix, "has a matrix", "a handler runs once; loop in its script instead"],
  [(step) => step.rollback, "has a rollback", "handlers run after the rollbacks; remove it"],
];

function refuseInHandler(reader: YamlReader, step: Step, outcome: string): void {
  for (const [applies, what, hint] of refusedInHandler) {
    if (applies(step)) reader.reportAt(step.pos, `step "${step.name}" of on.${outcome} ${what}`, hint);
  }
}
