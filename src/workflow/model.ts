/** A parsed, validated workflow: what the step engine runs, from either YAML form (workflow, playbook). */

import { RunyardError } from "../core/errors.js";
import type { StepContainer } from "../core/step-attempt.js";
import type { ScheduleSpec } from "./schedule.js";

/** What a runner carries out: commands, or a script. */
export const execActions = ["cmd.run", "shell.run"] as const;
export type ExecAction = (typeof execActions)[number];
/** Every step action; `approval` (awaits an approver) and `workflow.call` (a child run) run on the server. */
export const actions = [...execActions, "approval", "workflow.call", "agent.run"] as const;
export type Action = (typeof actions)[number];

/**
 * The one target of an approval step, run once on the server, so its summary, events and resume key
 * read as any step's.
 */
export const approvalHost = "server";

/** `action: approval`: who may answer, what they read, and how long the run waits. */
export interface ApprovalSpec {
  /** Shown to the approvers; `${VAR}` is replaced by the variable's value when the step starts. */
  message: string;
  /** Usernames and `role:admin` / `role:member` of the run's tenant. */
  approvers: string[];
  timeoutSeconds: number;
  /** `inputs:`: what the approver fills in; the values become the step's exports. */
  inputs: ApprovalInput[];
  /** `required:`: how many distinct approvers must approve (any one rejection rejects). */
  required: number;
  /** `self_approval: false`: whoever submitted the run may not answer it. */
  selfApproval: boolean;
  /** `wait:`: no answer is taken before this many seconds have passed since the step began. */
  waitSeconds: number;
}

export const approvalInputTypes = ["string", "number", "boolean", "choice"] as const;
export type ApprovalInputType = (typeof approvalInputTypes)[number];

/** One field of an approval's form (`inputs: {REGION: {type: choice, options: [eu, us]}}`). */
export interface ApprovalInput {
  /** A variable name: the step exports the value under it. */
  name: string;
  type: ApprovalInputType;
  /** `choice`: the values the approver picks from. */
  options?: string[];
  /** The value when the approver gives none. */
  default?: string;
  /** The approver must give a value (a default counts as given). */
  required: boolean;
  description?: string;
}

/** `action: workflow.call`: the saved workflow a step runs as a child run, and what it gives it. */
export interface CallSpec {
  /** The saved workflow's name: of the run's tenant, else of the platform's (outside any tenant). */
  workflow: string;
  /** Default: its newest version when the calling run is submitted. */
  version?: number;
  /** Values for the called workflow's `inputs:`; `${VAR}` is replaced when the step starts. */
  inputs: Record<string, string>;
  /** Where each of `inputs` is written, for a value the called workflow refuses at submit. */
  inputsPos: Record<string, SourcePos>;
  /** Where `workflow:` is written. */
  workflowPos: SourcePos;
}

/** Where a target host's steps run. */
export type HostSpec =
  /** `{}`: this process (or, under the server, the runner that took the run). */
  | { kind: "local"; container?: StepContainer }
  /** `{address, token}`: a `runyard agent-server` reached directly over HTTP. */
  | { kind: "direct"; address: string; token?: string }
  /** `{group, labels}`: any runner of the server that matches. */
  | { kind: "runner"; group?: string; labels: string[]; container?: StepContainer };

/** The label a runner advertises when it runs steps as Kubernetes Jobs (`executor: kubernetes`). */
export const kubernetesRunnerLabel = "kubernetes";

/** The label a runner advertises when it can reach a Docker engine: docker hosts need it. */
export const dockerRunnerLabel = "docker";

/** Why an attempt failed, as `retry.on` names it. */
export const retryReasons = ["error", "timeout", "runner_lost"] as const;
export type RetryReason = (typeof retryReasons)[number];
export const backoffKinds = ["fixed", "exponential"] as const;
export type Backoff = (typeof backoffKinds)[number];

/** `retry: {attempts, backoff, delay, max_delay, on_exit_codes, on}` on a step. */
export interface RetryPolicy {
  /** The most times the step runs on a host, the first attempt included (1: never retried). */
  attempts: number;
  backoff: Backoff;
  /** The wait before the first retry, in seconds; exponential doubles it for each next one. */
  delaySeconds: number;
  /** No wait is longer than this, in seconds. */
  maxDelaySeconds?: number;
  /** Set: a failure (`error`) is retried only when the command exited with one of these. */
  onExitCodes?: number[];
  /** The failures that are retried. */
  on: RetryReason[];
}

/** A position in the source file, 1-based. */
export interface SourcePos {
  line: number;
  col: number;
}

/** Where a container host's `image:` and `network:` are written (`network`: the image's when left out). */
export interface ContainerPos {
  image: SourcePos;
  network: SourcePos;
}

/** A parsed `when` / `condition` expression. */
export type Expr =
  | { type: "var"; name: string; pos: number }
  | { type: "string"; value: string; pos: number }
  | { type: "number"; value: number; raw: string; pos: number }
  | { type: "bool"; value: boolean; pos: number }
  | { type: "not"; operand: Expr; pos: number }
  | { type: "and" | "or"; left: Expr; right: Expr; pos: number }
  | { type: "compare"; op: "==" | "!=" | ">" | "<" | ">=" | "<="; left: Expr; right: Expr; pos: number };

export interface Step {
  name: string;
  /** Host names from the inventory; the step runs on all of them in parallel. */
  targets: string[];
  action: Action;
  /** cmd.run: the lines to run, one command each. shell.run: the script. */
  script: string;
  /** The shell that runs each line or the script; default bash. */
  shell: string;
  env: Record<string, string>;
  cwd?: string;
  /** Where the `cwd` key is written, for a refusal at submit (core/work-folders.ts). */
  cwdPos?: SourcePos;
  exportVars: boolean;
  maxOutputBytes?: number;
  outputPath?: string;
  /** `image:`: the pod's image under a Kubernetes executor (else its default); a process runner fails it. */
  image?: string;
  /** Parsed `when` (or playbook `condition`), with its source text for messages. */
  when?: { source: string; expr: Expr };
  expectVars: string[];
  continueOnError: boolean;
  timeoutSeconds?: number;
  retryCount: number;
  /** The first retry's wait; each next one doubles it. */
  retryDelaySeconds: number;
  /** `retry:`: the step's retry policy; absent, `retryCount` and `retryDelaySeconds` say it (retry-policy.ts). */
  retry?: RetryPolicy;
  /** Set exactly when `action` is `approval`. */
  approval?: ApprovalSpec;
  /** Set exactly when `action` is `workflow.call`. */
  call?: CallSpec;
  /** Set exactly when `action` is `agent.run`. */
  agent?: AgentStepSpec;
  /** `depends:`: the steps that must end before this one starts; one step with it makes the file a graph. */
  depends?: StepDependency[];
  /** `matrix:`: the step runs once per combination instead of once. */
  matrix?: StepMatrix;
  /** `rollback:`: what undoes the step when the run fails after it succeeded. */
  rollback?: StepRollback;
  pos: SourcePos;
}

/** The action a runner carries out for a step; approval and call steps never reach a runner. */
export function execAction(step: Step): ExecAction {
  if (step.action === "approval" || step.action === "workflow.call" || step.action === "agent.run") {
    throw new RunyardError("INTERNAL", `step "${step.name}" is ${step.action}: no runner carries it out`);
  }
  return step.action;
}

/**
 * `action: agent.run`: one turn of a coding agent on the step's host, through the same pipeline
 * as `runyard agent run` (workflow/agent-step.ts). `${VAR}` in the prompt is replaced.
 */
export interface AgentStepSpec {
  agent: string;
  prompt: string;
  model?: string;
  /** A git URL: the agent works on a new branch of it. */
  repo?: string;
  /** A folder of the host the agent works in instead of a repo. */
  cwd?: string;
  /** A command run after the agent; its failure fails the step. */
  tests?: string;
  push: boolean;
  budget?: { tokens?: number; usd?: number };
  /** A JSON Schema of `type: object` the final answer must match; its fields become exports. */
  outputSchema?: Record<string, unknown>;
}

/** One name of a step's `depends:` list. */
export interface StepDependency {
  step: string;
  pos: SourcePos;
}

/** One combination of a matrix step: the name events and summaries show, and its variables. */
export interface MatrixInstance {
  /** `test (NODE=18, OS=a)`. */
  name: string;
  vars: Record<string, string>;
}

export interface StepMatrix {
  /** The combinations left after `exclude` and `include`, in the order they start. */
  instances: MatrixInstance[];
  /** `fail_fast: true`: the first failing combination cancels the others. */
  failFast: boolean;
}

/** A step's `rollback:`: an action and args of the same forms as the step's own. */
export type StepRollback = Pick<Step, "action" | "script" | "shell" | "env" | "cwd" | "cwdPos">;

/** `max_parallel` when a workflow does not set it. */
export const defaultMaxParallel = 4;

/** Whether the steps run as a graph (some step has `depends`) rather than in file order. */
export function isStepGraph(workflow: Pick<Workflow, "steps">): boolean {
  return workflow.steps.some((step) => step.depends !== undefined);
}

export interface NotifySpec {
  url: string;
  secret?: string;
  retry: number;
  delayMs: number;
}

/** `concurrency:`: on a server, one run of a group at a time per tenant; the others wait in submit order. */
export interface ConcurrencySpec {
  /** The group's name as written; its `${VAR}`s are expanded from the run's vars at submit. */
  group: string;
  /** A new run cancels the group's running run and those waiting, instead of queueing behind them. */
  cancelInProgress: boolean;
  pos: SourcePos;
}

export interface Workflow {
  version?: string;
  name: string;
  /** Path the workflow was read from, for messages. */
  file?: string;
  /** Workflow-level env, given to every step. */
  env: Record<string, string>;
  /** Initial variables (`vars:`), overridden by `--var K=V`. */
  vars: Record<string, string>;
  /** `secrets:`: variables whose values are masked, as those of `*_TOKEN`, `*_KEY`, `*_SECRET`, `*_PASSWORD` are. */
  secrets: string[];
  hosts: Record<string, HostSpec>;
  /** Where each container host's settings are written, by host name (`executor: docker` hosts). */
  containerPos?: Record<string, ContainerPos>;
  steps: Step[];
  notify: NotifySpec[];
  concurrency?: ConcurrencySpec;
  /** `schedule:`: when a saved workflow runs on its own; a file run directly ignores them. */
  schedules?: ScheduleSpec[];
  /** `inputs:`: what a hook may fill (each `HOOK_...`; absent: nothing); defaults are in `vars` too. */
  inputs?: Record<string, InputSpec>;
  /** Where `inputs:` is written (its key), for a save refused because of a hook. */
  inputsPos?: SourcePos;
  /** `max_parallel`: at most this many steps (matrix combinations each count) run at once. */
  maxParallel?: number;
  /** `timeout:`: the whole run's limit, in seconds; past it the run is stopped and ends `timeout` (RUN_TIMEOUT). */
  runTimeoutSeconds?: number;
  /** `outputs:`: what a run gives the `workflow.call` step that ran it; `${VAR}`s are its final variables. */
  outputs?: Record<string, string>;
  /** `on:`: steps run once the run's outcome is known (after its rollbacks). */
  handlers?: RunHandlers;
}

/** The outcomes `on:` has steps for; `exit` runs after the others, whatever the outcome. */
export const handlerOutcomes = ["success", "failure", "cancel", "exit"] as const;
export type HandlerOutcome = (typeof handlerOutcomes)[number];
export type RunHandlers = Partial<Record<HandlerOutcome, Step[]>>;

/** Every step of a workflow, its `on:` handlers' too: what checks of its steps go through. */
export function everyStep(workflow: Pick<Workflow, "steps" | "handlers">): Step[] {
  return [...workflow.steps, ...handlerOutcomes.flatMap((outcome) => workflow.handlers?.[outcome] ?? [])];
}

/** The type of a workflow's input: what a delivery's (or a caller's) value must read as. */
export type InputType = "string" | "integer" | "number" | "boolean" | "choice";

/** One declared input (`inputs: {HOOK_BRANCH: {type: string, max_length: 200}}`). */
export interface InputSpec {
  type: InputType;
  /** The longest value, in characters. */
  maxLength: number;
  /** Its value when a delivery gives none (or a run by hand sets none); "" unless declared. */
  default: string;
  /** `choice`: the values it may take. */
  options?: string[];
  /** `required: true`: a run is refused at submit when the input is empty. */
  required?: boolean;
}

/** One problem found while reading a workflow file. */
export interface Diagnostic {
  file: string;
  line: number;
  col: number;
  message: string;
  hint?: string;
  /** A limit on the workflow's size was passed (WORKFLOW_TOO_LARGE), not a mistake in its content. */
  limit?: true;
}

export function formatDiagnostic(d: Diagnostic): string {
  return `${d.file}:${d.line}:${d.col}: ${d.message}${d.hint ? ` (hint: ${d.hint})` : ""}`;
}

/** A host the steps target that a server must hand to one of its runners; `group` null is any group. */
export interface RunnerNeed {
  host: string;
  group: string | null;
  labels: string[];
}

/** What runners a workflow waits for on a server: every targeted host but direct (`address:`) ones. */
export function runnerNeeds(workflow: Workflow): RunnerNeed[] {
  const targeted = new Set(everyStep(workflow).flatMap((step) => step.targets));
  const needs: RunnerNeed[] = [];
  for (const host of targeted) {
    const spec = workflow.hosts[host];
    if (spec && spec.kind !== "direct") needs.push({ host, ...runnerRequirements(spec) });
  }
  return needs;
}

/** The runners that may take a host's steps: its group and labels, plus `docker` for container steps. */
export function runnerRequirements(spec: Exclude<HostSpec, { kind: "direct" }>): {
  group: string | null;
  labels: string[];
} {
  const labels = spec.kind === "runner" ? [...spec.labels] : [];
  if (spec.container && !labels.includes(dockerRunnerLabel)) labels.push(dockerRunnerLabel);
  return { group: spec.kind === "runner" ? (spec.group ?? null) : null, labels };
}

/** WORKFLOW_TOO_LARGE when a size limit was passed (nothing else read), else WORKFLOW_INVALID with all. */
export function workflowProblemsError(file: string, diagnostics: Diagnostic[]): RunyardError {
  const code = diagnostics.some((d) => d.limit) ? "WORKFLOW_TOO_LARGE" : "WORKFLOW_INVALID";
  const count = `${diagnostics.length} problem${diagnostics.length === 1 ? "" : "s"}`;
  return new RunyardError(code, `${count} in ${file}:\n${diagnostics.map(formatDiagnostic).join("\n")}`, {
    details: diagnostics,
  });
}
