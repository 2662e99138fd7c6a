import type { SeededRandom } from "./seeded-random.js";

/**
 * The workflows the soak submits. Every step is the same shell script: it writes what it does
 * to a ledger file of its own (one per attempt, named by a token the attempt makes up), then
 * prints numbered lines `soak TOKEN N`. The ledger is the truth the stored output is checked
 * against: which runner ran the attempt (its cwd), its process group, what it printed and how it
 * ended.
 */
export const shapeNames = ["lines", "steps", "retries", "flaky", "failing"] as const;
export type ShapeName = (typeof shapeNames)[number];

export interface Shape {
  name: ShapeName;
  steps: readonly string[];
  /** `retry_count` of every step. */
  retries: number;
  /** The exit code of a step attempt that runs to its end: `flaky` fails its first attempt only. */
  exitCode: number;
}

export const shapes: Record<ShapeName, Shape> = {
  /** One step, no retry. */
  lines: { name: "lines", steps: ["count"], retries: 0, exitCode: 0 },
  /** Three steps one after the other, no retry. */
  steps: { name: "steps", steps: ["first", "second", "third"], retries: 0, exitCode: 0 },
  /** Two steps that may be retried twice: a lost runner costs an attempt, not the run. */
  retries: { name: "retries", steps: ["first", "second"], retries: 2, exitCode: 0 },
  /** One step whose first attempt exits 1, retried twice. */
  flaky: { name: "flaky", steps: ["count"], retries: 2, exitCode: 0 },
  /** One step that exits 3 after its lines, no retry: the run must fail with STEP_FAILED. */
  failing: { name: "failing", steps: ["count"], retries: 0, exitCode: 3 },
};

/** How often each shape is drawn, in tenths. */
const mix: readonly ShapeName[] = [
  "lines",
  "lines",
  "lines",
  "steps",
  "steps",
  "retries",
  "retries",
  "flaky",
  "flaky",
  "failing",
];

export function drawShape(random: SeededRandom): Shape {
  return shapes[random.pick(mix)];
}

/** The run's name tells the checks its shape and index: `soak-<shape>-<index>`. */
export function runName(shape: Shape, index: number): string {
  return `soak-${shape.name}-${index}`;
}

export function shapeOfRunName(name: string): Shape | undefined {
  const match = /^soak-([a-z]+)-\d+$/.exec(name);
  return match ? shapes[match[1] as ShapeName] : undefined;
}

export interface StepScriptOptions {
  /** Lines each attempt prints. */
  lines: number;
  /** Seconds between two lines. */
  pause: number;
}

function stepScript(shape: Shape, options: StepScriptOptions): string {
  const decideExit =
    shape.name === "flaky"
      ? `if [ ! -e "$SOAK_LEDGER/$RUNYARD_RUN_ID.flaked" ]; then : > "$SOAK_LEDGER/$RUNYARD_RUN_ID.flaked"; code=1; fi`
      : `code=${shape.exitCode}`;
  return [
    "tok=$$x$RANDOM$RANDOM",
    'f="$SOAK_LEDGER/$tok"',
    "read -r _ _ _ _ pgid _ < /proc/$$/stat",
    'echo "begin $(date +%s%3N) $$ $pgid $RUNYARD_RUN_ID $RUNYARD_STEP $PWD" > "$f"',
    "code=0",
    decideExit,
    "i=1",
    `while [ $i -le ${options.lines} ]; do`,
    '  echo "$i" >> "$f"',
    '  echo "soak $tok $i"',
    `  sleep ${options.pause}`,
    "  i=$((i + 1))",
    "done",
    'echo "end $(date +%s%3N) $code" >> "$f"',
    "exit $code",
  ].join("\n");
}

/** The workflow YAML of run `index`; `ledger` is the folder the attempts write their ledgers to. */
export function soakWorkflow(
  shape: Shape,
  index: number,
  env: { ledger: string; soakId: string },
  options: StepScriptOptions,
): string {
  const script = stepScript(shape, options)
    .split("\n")
    .map((line) => `        ${line}`)
    .join("\n");
  const steps = shape.steps.map(
    (step) => `  - name: ${step}
    targets: [worker]
    action: shell.run
    retry_count: ${shape.retries}
    retry_delay_seconds: 0
    args:
      shell: bash
      script: |
${script}`,
  );
  return `version: v0.1
name: ${runName(shape, index)}
env:
  SOAK_LEDGER: ${JSON.stringify(env.ledger)}
  SOAK_ID: ${JSON.stringify(env.soakId)}
inventory:
  hosts:
    worker: {}
steps:
${steps.join("\n")}
`;
}
