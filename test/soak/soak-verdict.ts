import type { ErrorInfo, RunEvent } from "../../src/core/events.js";
import type { MemberKind } from "./soak-fleet.js";
import type { LedgerAttempt } from "./soak-ledger.js";
import { type Shape, shapeOfRunName } from "./soak-workflows.js";

/** A run's record as stored. */
export interface StoredRun {
  id: string;
  name: string;
  status: string;
  error: ErrorInfo | null;
  lastSeq: number;
  /** Its status as `GET /api/runs/:id` answers. */
  apiStatus: string;
}

/** One kill -9 of the soak; `at` is epoch ms, taken right after the signal went. */
export interface Kill {
  member: string;
  kind: MemberKind;
  at: number;
  /**
   * When the member's next life began to start (epoch ms; Infinity when it never did). Until then
   * the member had no process of its own, so a step that began on it in between was handed over
   * by the killed life (its fork-server had the request in hand, and bwrap took a while on a
   * loaded machine: 273 ms has been seen) and is the kill's to stop.
   */
  nextLifeFrom: number;
}

/** A job as the store holds it: which runner the server handed it to, and when it was made. */
export interface StoredJob {
  runId: string;
  runnerId: string | null;
  createdAt: number;
}

/** A job handed to a runner that died just before (the server had not seen its socket close yet). */
const handedToTheDeadMs = 5000;

function killed(kills: readonly Kill[], runner: string, from: number, to: number): Kill | undefined {
  return kills.find((kill) => kill.member === runner && kill.nextLifeFrom >= from && kill.at <= to);
}

export interface VerdictInput {
  runs: readonly StoredRun[];
  /** Each run's stored events in seq order. */
  events: ReadonlyMap<string, readonly RunEvent[]>;
  jobs: readonly StoredJob[];
  ledger: readonly LedgerAttempt[];
  kills: readonly Kill[];
}

export interface Verdict {
  /** Everything that is not as it must be, one sentence each. */
  anomalies: string[];
  /** Runs by final status and error code (`interrupted RUNNER_LOST`). */
  outcomes: Record<string, number>;
  /** Step attempts the ledger holds, and how many of them were cut short by a kill. */
  attempts: number;
  cutShort: number;
  /** Output lines stored, all runs. */
  linesStored: number;
}

type Finished = Extract<RunEvent, { type: "run.finished" }>;

/**
 * Checks a finished soak against the truth: every run ended once, in a state that matches what
 * happened to it (a run is `interrupted` with RUNNER_LOST only when the runner of its last
 * attempt was killed), its seqs are 1..n, and every line a step printed is stored at most once,
 * in order, and exactly once when nothing was killed under it.
 */
export function judgeSoak(input: VerdictInput): Verdict {
  const anomalies: string[] = [];
  const outcomes: Record<string, number> = {};
  let linesStored = 0;
  const ledgerByRun = new Map<string, LedgerAttempt[]>();
  for (const attempt of input.ledger) {
    ledgerByRun.set(attempt.runId, [...(ledgerByRun.get(attempt.runId) ?? []), attempt]);
  }
  const killedAfter = (runner: string, from: number, to: number): boolean =>
    killed(input.kills, runner, from, to) !== undefined;

  for (const run of input.runs) {
    const say = (what: string): void => {
      anomalies.push(`run ${run.id} (${run.name}): ${what}`);
    };
    const events = input.events.get(run.id) ?? [];
    const finished = checkSpine(run, events, say);
    checkCausalOrder(events, say);
    const outcome = `${run.status}${run.error ? ` ${run.error.code}` : ""}`;
    outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
    const shape = shapeOfRunName(run.name);
    if (!shape) {
      say("its name is not one the soak gives");
      continue;
    }
    if (!finished) continue;
    const finishedAt = Date.parse(finished.ts);
    const attempts = ledgerByRun.get(run.id) ?? [];
    ledgerByRun.delete(run.id);
    for (const step of shape.steps) {
      const ofStep = attempts
        .filter((attempt) => attempt.step === step)
        .sort((a, b) => a.beganAt - b.beganAt);
      const stored = checkOutput(step, events, ofStep, finishedAt, killedAfter, say);
      linesStored += [...stored.values()].reduce((sum, numbers) => sum + numbers.length, 0);
      // A step that succeeded stored its last attempt's every line: its step.finished follows them.
      const succeeded = ofStep.filter((attempt) => attempt.end?.code === 0).at(-1);
      if (
        run.status === "success" &&
        succeeded &&
        (stored.get(succeeded.token)?.length ?? 0) !== succeeded.printed
      ) {
        say(
          `succeeded, but step ${step}'s successful attempt ${succeeded.token} printed ${succeeded.printed} lines and ${stored.get(succeeded.token)?.length ?? 0} are stored`,
        );
      }
      checkAttempts(step, shape, ofStep, input.kills, finishedAt, say);
    }
    const jobs = input.jobs.filter((job) => job.runId === run.id);
    checkOutcome(run, shape, events, finished, attempts, jobs, input.kills, say);
  }
  for (const [runId, attempts] of ledgerByRun) {
    anomalies.push(`run ${runId}: ${attempts.length} step attempt(s) ran for a run the store does not hold`);
  }
  const cutShort = input.ledger.filter((attempt) => !attempt.end).length;
  return { anomalies, outcomes, attempts: input.ledger.length, cutShort, linesStored };
}

/** One run.finished, last; seqs 1..n with n the run's last_seq; the record says what the event says. */
function checkSpine(
  run: StoredRun,
  events: readonly RunEvent[],
  say: (what: string) => void,
): Finished | undefined {
  const gap = events.findIndex((event, index) => event.seq !== index + 1);
  if (gap >= 0) say(`seqs are not 1..n: position ${gap + 1} holds seq ${events[gap]?.seq}`);
  if (events.length !== run.lastSeq) say(`${events.length} events stored but last_seq is ${run.lastSeq}`);
  const finishes = events.filter((event): event is Finished => event.type === "run.finished");
  if (finishes.length !== 1) {
    say(`${finishes.length} run.finished events (status ${run.status})`);
    return finishes[0];
  }
  const finished = finishes[0] as Finished;
  if (events.at(-1) !== finished) say(`events follow run.finished (last is ${events.at(-1)?.type})`);
  if (finished.status !== run.status) say(`run.finished says ${finished.status}, the record ${run.status}`);
  if (run.apiStatus !== run.status) say(`the API answers ${run.apiStatus}, the store holds ${run.status}`);
  if ((finished.error?.code ?? null) !== (run.error?.code ?? null)) {
    say(`run.finished's error is ${finished.error?.code}, the record's ${run.error?.code}`);
  }
  return finished;
}

/** A step's output is stored after its `step.started`, and that after `run.started` (DESIGN.md section 3). */
function checkCausalOrder(events: readonly RunEvent[], say: (what: string) => void): void {
  let runStarted = false;
  const started = new Set<string>();
  for (const event of events) {
    if (event.type === "run.started") runStarted = true;
    if (event.type === "step.started") {
      if (!runStarted) say(`step ${event.step}'s start (seq ${event.seq}) is stored before run.started`);
      started.add(`${event.step}@${event.host}`);
    }
    if (event.type === "step.output" && !started.has(`${event.step}@${event.host}`)) {
      say(`step ${event.step}'s output (seq ${event.seq}) is stored before its step.started`);
      return;
    }
  }
}

/**
 * The step's stored output, read as its attempts printed it: each line `soak TOKEN N` belongs to
 * the attempt whose ledger is TOKEN; an attempt's numbers must run 1, 2, 3 ... (none twice, none
 * skipped), no further than it wrote down, and to the end when it ended and its runner was not
 * killed before the run finished. Returns the numbers stored, by attempt.
 */
function checkOutput(
  step: string,
  events: readonly RunEvent[],
  attempts: readonly LedgerAttempt[],
  finishedAt: number,
  killedAfter: (runner: string, from: number, to: number) => boolean,
  say: (what: string) => void,
): Map<string, number[]> {
  const text = events
    .flatMap((event) => (event.type === "step.output" && event.step === step ? [event.data] : []))
    .join("");
  const lines = text.split("\n").filter((line) => line !== "");
  const stored = new Map<string, number[]>();
  for (const line of lines) {
    const match = /^soak (\S+) (\d+)$/.exec(line);
    if (!match) {
      say(`step ${step} stored a line no attempt printed whole: ${JSON.stringify(line)}`);
      continue;
    }
    const [, token, number] = match as unknown as [string, string, string];
    stored.set(token, [...(stored.get(token) ?? []), Number(number)]);
  }
  for (const [token, numbers] of stored) {
    const attempt = attempts.find((each) => each.token === token);
    if (!attempt) {
      say(`step ${step} stored output of attempt ${token}, which no ledger of this step holds`);
      continue;
    }
    const wrong = numbers.findIndex((number, index) => number !== index + 1);
    if (wrong >= 0) {
      const number = numbers[wrong] as number;
      const twice = numbers.slice(0, wrong).includes(number);
      say(
        `step ${step} attempt ${token} on ${attempt.runner}: line ${number} ${twice ? "stored twice" : `stored where line ${wrong + 1} belongs`} (lines stored: ${numbers.join(",")})`,
      );
    }
    if (numbers.length > attempt.printed) {
      say(`step ${step} attempt ${token}: ${numbers.length} lines stored, ${attempt.printed} printed`);
    }
  }
  for (const attempt of attempts) {
    const count = stored.get(attempt.token)?.length ?? 0;
    if (attempt.end && count < attempt.printed && !killedAfter(attempt.runner, attempt.beganAt, finishedAt)) {
      say(
        `step ${step} attempt ${attempt.token} on ${attempt.runner} printed ${attempt.printed} lines and ended, ${count} are stored, and ${attempt.runner} was not killed`,
      );
    }
  }
  return stored;
}

/** No more attempts than the policy allows, never two at once, none cut short unless its runner was killed. */
function checkAttempts(
  step: string,
  shape: Shape,
  attempts: readonly LedgerAttempt[],
  kills: readonly Kill[],
  finishedAt: number,
  say: (what: string) => void,
): void {
  if (attempts.length > shape.retries + 1) {
    say(
      `step ${step} ran ${attempts.length} attempts; retry_count ${shape.retries} allows ${shape.retries + 1}`,
    );
  }
  const stoppedAt = (attempt: LedgerAttempt): number | undefined =>
    attempt.end?.at ?? killed(kills, attempt.runner, attempt.beganAt, finishedAt)?.at;
  for (const [index, attempt] of attempts.entries()) {
    const stopped = stoppedAt(attempt);
    if (stopped === undefined) {
      say(
        `step ${step} attempt ${attempt.token} on ${attempt.runner} (pid ${attempt.pid}) stopped after line ${attempt.printed} without reaching its end, and ${attempt.runner} was not killed`,
      );
    }
    const orphaned = kills.find(
      (kill) =>
        kill.member === attempt.runner && kill.at < attempt.beganAt && attempt.beganAt <= kill.nextLifeFrom,
    );
    if (orphaned && attempt.end) {
      say(
        `step ${step} attempt ${attempt.token} began on ${attempt.runner} ${attempt.beganAt - orphaned.at} ms after it was killed and still ran to its end (exit ${attempt.end.code}): the killed runner's helper did not stop it`,
      );
    }
    const next = attempts[index + 1];
    if (next && stopped !== undefined && next.beganAt < stopped) {
      say(
        `step ${step} ran twice at once: attempt ${next.token} on ${next.runner} began ${stopped - next.beganAt} ms before attempt ${attempt.token} on ${attempt.runner} stopped`,
      );
    }
  }
}

/**
 * The run's status must be one its shape can reach: success; failed with STEP_FAILED for the
 * step that exits 3; interrupted with RUNNER_LOST only when the step's last attempt lost its
 * runner to a kill. Nothing else (no canceled, no timeout, no other code).
 */
function checkOutcome(
  run: StoredRun,
  shape: Shape,
  events: readonly RunEvent[],
  finished: Finished,
  attempts: readonly LedgerAttempt[],
  jobs: readonly StoredJob[],
  kills: readonly Kill[],
  say: (what: string) => void,
): void {
  const finishedAt = Date.parse(finished.ts);
  const endedWith = (step: string, code: number): boolean =>
    attempts.some((attempt) => attempt.step === step && attempt.end?.code === code);
  if (run.status === "success") {
    if (shape.exitCode !== 0) say("succeeded, but its step exits 3");
    for (const step of shape.steps) {
      if (!endedWith(step, 0)) say(`succeeded, but no attempt of step ${step} ended with exit code 0`);
    }
    // The first attempt fails on purpose, unless a kill cut it after it marked the run.
    const cut = attempts.some((attempt) => !attempt.end);
    if (shape.name === "flaky" && !endedWith("count", 1) && !cut)
      say("succeeded, but no attempt failed first");
    return;
  }
  if (run.status === "failed" && run.error?.code === "STEP_FAILED") {
    if (shape.exitCode === 0) say("failed with STEP_FAILED, but its steps exit 0 (flaky: once)");
    else if (!endedWith(shape.steps[0] as string, shape.exitCode))
      say("failed, but no attempt ran to its exit 3");
    return;
  }
  if (run.status === "interrupted" && run.error?.code === "RUNNER_LOST") {
    const lost = (finished.steps ?? []).filter((step) => step.error?.code === "RUNNER_LOST");
    if (lost.length === 0) say("interrupted with RUNNER_LOST, but no step of run.finished says RUNNER_LOST");
    for (const { name } of lost) {
      const why = unexplainedLoss(name, events, attempts, jobs, kills, finishedAt);
      if (why) say(`interrupted with RUNNER_LOST in step ${name}, but ${why}`);
    }
    return;
  }
  say(
    `ended ${run.status}${run.error ? ` with ${run.error.code}: ${run.error.message}` : ""}, which nothing in the soak causes`,
  );
}

/** Why a RUNNER_LOST of `step`'s last attempt is not explained by a runner kill, or undefined when it is. */
function unexplainedLoss(
  step: string,
  events: readonly RunEvent[],
  attempts: readonly LedgerAttempt[],
  jobs: readonly StoredJob[],
  kills: readonly Kill[],
  finishedAt: number,
): string | undefined {
  // The lost step is the run's last: its job is the last made. A step's start is stored when a
  // runner takes the job up, a moment after its process began, so the job's making (not the
  // step.started) bounds the attempts that are this job's.
  const job = [...jobs]
    .sort((x, y) => x.createdAt - y.createdAt)
    .filter((each) => each.createdAt <= finishedAt)
    .at(-1);
  if (!job) return "no job of it was ever made";
  const around = kills
    .filter((kill) => kill.at >= job.createdAt - 30_000 && kill.at <= finishedAt)
    .map((kill) => `${kill.member} at ${new Date(kill.at).toISOString()}`)
    .join(", ");
  const last = attempts.filter((attempt) => attempt.step === step && attempt.beganAt >= job.createdAt).at(-1);
  if (last) {
    if (killed(kills, last.runner, last.beganAt, finishedAt)) return undefined;
    return `its last attempt ${last.token} ran on ${last.runner} (${last.end ? `ended with ${last.end.code}` : `cut after line ${last.printed}`}), which was not killed; kills around it: ${around || "none"}`;
  }
  // A job lost without its step's start: its runner went silent before the server heard it take
  // the job up, which only a kill of that runner explains here (one that comes back says what
  // it holds, and a job it never took goes back to the queue).
  const started = events.some(
    (event) => event.type === "step.started" && event.step === step && Date.parse(event.ts) >= job.createdAt,
  );
  if (!started) {
    if (job.runnerId && killed(kills, job.runnerId, job.createdAt - handedToTheDeadMs, finishedAt))
      return undefined;
    return `its job was lost though no runner took it up, and its runner ${job.runnerId ?? "(none)"} was not killed; kills around it: ${around || "none"}`;
  }
  // No process began: its runner died between taking the job up and starting it.
  if (!job.runnerId) return `its job holds no runner; kills around it: ${around || "none"}`;
  if (killed(kills, job.runnerId, job.createdAt - handedToTheDeadMs, finishedAt)) return undefined;
  return `no attempt began, and the job's runner ${job.runnerId} was not killed near ${new Date(job.createdAt).toISOString()}; kills around it: ${around || "none"}`;
}
