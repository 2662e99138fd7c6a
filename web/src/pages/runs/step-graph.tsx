import { useState } from "react";
import type { Schema } from "../../api.js";
import { formatDuration } from "./format.js";
import { CallSteps, CallToggle, callGroupHeight } from "./step-call-group.js";
import { type StepFacts, shortRunId } from "./step-facts.js";

type RunGraph = Schema<"RunGraph">;
type CalledRun = Schema<"CalledRun">;
type GraphStep = RunGraph["steps"][number];

/** A step's state as the graph shows it: not started yet is `pending`. */
export type GraphState =
  | "pending"
  | "waiting"
  | "running"
  | "retrying"
  | "success"
  | "failed"
  | "skipped"
  | "canceled"
  | "timeout";

const boxWidth = 176;
const boxHeight = 64;
const columnGap = 56;
const rowGap = 14;

/**
 * One state for a step that ran on several hosts, or as several matrix combinations: still
 * going while any is, else the worst ending (failed, timeout, canceled, skipped, success).
 */
export function combinedState(states: GraphState[]): GraphState {
  if (states.length === 0) return "pending";
  for (const going of ["running", "retrying", "waiting"] as const) if (states.includes(going)) return going;
  if (states.includes("pending")) return states.every((state) => state === "pending") ? "pending" : "running";
  for (const ending of ["failed", "timeout", "canceled", "skipped"] as const)
    if (states.includes(ending)) return ending;
  return "success";
}

/** Each step's column: the longest chain of `depends` before it, so every edge points right. */
export function columnsOf(steps: GraphStep[]): Map<string, number> {
  const byName = new Map(steps.map((step) => [step.name, step]));
  const columns = new Map<string, number>();
  const visiting = new Set<string>();
  const column = (name: string): number => {
    const known = columns.get(name);
    if (known !== undefined) return known;
    // A cycle never reaches a run (the workflow is refused), but a drawing must not hang on one.
    if (visiting.has(name)) return 0;
    visiting.add(name);
    const depends = byName.get(name)?.depends.filter((d) => byName.has(d)) ?? [];
    const value = depends.length === 0 ? 0 : Math.max(...depends.map(column)) + 1;
    visiting.delete(name);
    columns.set(name, value);
    return value;
  };
  for (const step of steps) column(step.name);
  return columns;
}

interface Placed {
  step: GraphStep;
  x: number;
  y: number;
}

/** Boxes placed by column, each column's boxes one under another; `extraOf` a box's growth below it. */
function layout(
  steps: GraphStep[],
  extraOf: (step: string) => number,
): { placed: Map<string, Placed>; width: number; height: number } {
  const columns = columnsOf(steps);
  const tops: number[] = [];
  const placed = new Map<string, Placed>();
  for (const step of steps) {
    const column = columns.get(step.name) ?? 0;
    const y = tops[column] ?? 0;
    tops[column] = y + boxHeight + extraOf(step.name) + rowGap;
    placed.set(step.name, { step, x: column * (boxWidth + columnGap), y });
  }
  const width = tops.length * (boxWidth + columnGap) - columnGap;
  const height = Math.max(...tops, boxHeight + rowGap) - rowGap;
  return { placed, width, height };
}

/**
 * The run's steps as a graph: a box per step with its state, an arrow per `depends` edge, and a
 * matrix step's combinations listed under the graph when its box is opened, a call step's child
 * run's steps drawn in place under its box when opened (closed at first). The graph scrolls
 * inside its own frame on a narrow screen, so the page never scrolls sideways.
 */
export function StepGraph({
  graph,
  stateOf,
  factsOf,
  rollbackStateOf,
  callOf,
  now,
  onSelect,
}: {
  graph: RunGraph;
  /** The state of a step (or matrix combination) by the name its events carry. */
  stateOf: (name: string) => GraphState;
  /** A step's duration, skip reason and the run it was kept from (all its combinations for a matrix). */
  factsOf: (step: string) => StepFacts;
  /** The state of `rollback: <step>`, undefined when it did not run. */
  rollbackStateOf: (step: string) => GraphState | undefined;
  /** A `workflow.call` step's child run, once it started. */
  callOf: (step: string) => CalledRun | undefined;
  now: number;
  onSelect: (step: string) => void;
}) {
  const [open, setOpen] = useState<string | null>(null);
  const [openCalls, setOpenCalls] = useState<ReadonlySet<string>>(new Set());
  const openCall = (name: string): CalledRun | undefined => (openCalls.has(name) ? callOf(name) : undefined);
  const { placed, width, height } = layout(graph.steps, (name) => {
    const call = openCall(name);
    return call ? callGroupHeight(call) : 0;
  });
  const toggleCall = (name: string) => {
    const next = new Set(openCalls);
    if (!next.delete(name)) next.add(name);
    setOpenCalls(next);
  };
  const stepState = (step: GraphStep): GraphState =>
    step.matrix ? combinedState(step.matrix.map(stateOf)) : stateOf(step.name);
  const opened = graph.steps.find((step) => step.name === open && step.matrix);
  return (
    <div className="step-graph">
      <div className="step-graph-frame">
        <figure
          className="step-graph-canvas"
          style={{ width, height }}
          aria-label={`Step graph: ${graph.steps.length} steps, at most ${graph.max_parallel} at once`}
        >
          <svg width={width} height={height} aria-hidden="true" className="step-graph-edges">
            <defs>
              <marker
                id="step-graph-arrow"
                viewBox="0 0 8 8"
                refX="8"
                refY="4"
                markerWidth="8"
                markerHeight="8"
                orient="auto"
              >
                <path d="M0,0 L8,4 L0,8 z" />
              </marker>
            </defs>
            {graph.steps.flatMap((step) =>
              step.depends.map((from) => {
                const a = placed.get(from);
                const b = placed.get(step.name);
                if (!a || !b) return null;
                const x1 = a.x + boxWidth;
                const y1 = a.y + boxHeight / 2;
                const x2 = b.x;
                const y2 = b.y + boxHeight / 2;
                const bend = (x2 - x1) / 2;
                return (
                  <path
                    key={`${from}->${step.name}`}
                    data-from={from}
                    data-to={step.name}
                    d={`M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2},${y2}`}
                    markerEnd="url(#step-graph-arrow)"
                  />
                );
              }),
            )}
          </svg>
          {[...placed.values()].map(({ step, x, y }) => {
            const state = stepState(step);
            const facts = factsOf(step.name);
            const rollback = step.rollback ? rollbackStateOf(step.name) : undefined;
            const done = step.matrix?.filter(
              (name) => !["pending", "running", "retrying", "waiting"].includes(stateOf(name)),
            );
            const duration = facts.durationMs !== undefined ? formatDuration(facts.durationMs) : undefined;
            const note = facts.keptFrom ? undefined : facts.reason;
            const call = step.call !== null ? callOf(step.name) : undefined;
            const callOpen = call !== undefined && openCalls.has(step.name);
            return [
              <button
                type="button"
                key={step.name}
                className={`step-box step-${state}${facts.keptFrom ? " step-kept" : ""}${open === step.name ? " step-open" : ""}${call ? " step-box-call" : ""}`}
                style={{ left: x, top: y, width: boxWidth, height: boxHeight }}
                data-step={step.name}
                data-state={state}
                title={note ? `${step.name}: ${state}: ${note}` : undefined}
                aria-label={`${step.name}: ${state}${facts.keptFrom ? `, kept from ${facts.keptFrom}` : ""}${duration && !facts.keptFrom ? `, ${duration}` : ""}${note ? `, ${note}` : ""}${step.matrix ? `, ${step.matrix.length} combinations` : ""}${rollback ? `, rollback ${rollback}` : ""}${call ? `, calls ${call.workflow}` : ""}`}
                aria-expanded={step.matrix ? open === step.name : undefined}
                onClick={() => {
                  if (step.matrix) setOpen(open === step.name ? null : step.name);
                  onSelect(step.name);
                }}
              >
                <span className="step-box-name">{step.name}</span>
                <span className={`step-box-state status-${state}`}>
                  {state}
                  {step.matrix && ` · ${done?.length ?? 0}/${step.matrix.length}`}
                  {rollback && ` · rollback ${rollback}`}
                  {duration && !facts.keptFrom && <span className="step-box-duration"> · {duration}</span>}
                </span>
                {note && <span className="step-box-note">{note}</span>}
                {/* The line the kept mark lies over. */}
                {facts.keptFrom && (
                  <span className="step-box-note" aria-hidden="true">
                    &nbsp;
                  </span>
                )}
              </button>,
              // A link may not sit in a button: the kept mark lies over the box's last line.
              facts.keptFrom && (
                <a
                  key={`${step.name} kept`}
                  className="step-box-kept"
                  style={{ left: x + 10, top: y + boxHeight - 22, maxWidth: boxWidth - 16 }}
                  href={`#/runs/${encodeURIComponent(facts.keptFrom)}`}
                  title={`kept from run ${facts.keptFrom}: it did not run again here`}
                  data-kept-step={step.name}
                >
                  kept from {shortRunId(facts.keptFrom)}
                </a>
              ),
              call && (
                <CallToggle
                  key={`${step.name} call toggle`}
                  call={call}
                  open={callOpen}
                  onToggle={() => toggleCall(step.name)}
                  style={{ left: x + boxWidth - 30, top: y + 6 }}
                />
              ),
              call && callOpen && (
                <CallSteps
                  key={`${step.name} call steps`}
                  call={call}
                  now={now}
                  style={{
                    left: x,
                    top: y + boxHeight + 4,
                    width: boxWidth,
                    height: callGroupHeight(call) - 4,
                  }}
                />
              ),
            ];
          })}
        </figure>
      </div>
      {opened?.matrix && (
        <ul className="step-matrix" aria-label={`Combinations of ${opened.name}`}>
          {opened.matrix.map((name) => {
            const state = stateOf(name);
            return (
              <li key={name} data-combination={name} data-state={state}>
                <button type="button" className="link" onClick={() => onSelect(name)}>
                  {name}
                </button>{" "}
                <span className={`status-${state}`}>{state}</span>
              </li>
            );
          })}
        </ul>
      )}
    </div>
  );
}
