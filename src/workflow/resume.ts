import { stepSummaryOf } from "../core/event-sequencer.js";
import type { EventOf, RunEvent, StepSummary } from "../core/events.js";

/** What a resumed run had already done for one step on one host. */
export interface HostProgress {
  summary?: StepSummary;
  exports: Record<string, string>;
  /** Attempts begun; when `inFlight`, the last one is still running somewhere. */
  attempts: number;
  inFlight: boolean;
  /** An approval step that said `step.waiting`: it waits again, to the same deadline. */
  waiting?: EventOf<"step.waiting">;
  /** An approval step's answer, when it was stored before its `step.finished`. */
  answer?: EventOf<"approval.answered">;
  /** A call step that started its child run (`step.called`). */
  called?: EventOf<"step.called">;
  /** An approval step's approvers whose `approval.vote` was emitted already. */
  votes?: Set<string>;
  /** The seq of its `step.finished`: where it ended among the run's steps. */
  endSeq?: number;
}

export function hostKey(step: string, host: string): string {
  return `${step}\u0000${host}`;
}

/**
 * Reads back a run's stored events into what the engine needs to carry on. Events hold
 * exported values masked; `realExports` (by `hostKey`) gives the values themselves.
 */
export function priorProgress(
  events: RunEvent[],
  realExports?: Map<string, Record<string, string>>,
): {
  started: boolean;
  hosts: Map<string, HostProgress>;
  exports: Record<string, string>[];
} {
  const hosts = new Map<string, HostProgress>();
  const exports: Record<string, string>[] = [];
  let started = false;
  const progress = (step: string, host: string): HostProgress => {
    const key = hostKey(step, host);
    let entry = hosts.get(key);
    if (!entry) {
      entry = { exports: {}, attempts: 0, inFlight: false };
      hosts.set(key, entry);
    }
    return entry;
  };
  for (const event of events) {
    switch (event.type) {
      case "run.started":
        started = true;
        break;
      case "step.started":
        Object.assign(progress(event.step, event.host), { attempts: event.attempt, inFlight: true });
        break;
      case "step.retrying":
        progress(event.step, event.host).inFlight = false;
        break;
      case "vars.exported":
        Object.assign(progress(event.step, event.host).exports, event.vars);
        break;
      case "step.waiting":
        progress(event.step, event.host).waiting = event;
        break;
      case "approval.answered":
        progress(event.step, event.host).answer = event;
        break;
      case "step.called":
        progress(event.step, event.host).called = event;
        break;
      case "approval.vote": {
        const entry = progress(event.step, event.host);
        entry.votes = new Set([...(entry.votes ?? []), event.by]);
        break;
      }
      case "step.finished": {
        const entry = progress(event.step, event.host);
        entry.inFlight = false;
        entry.summary = stepSummaryOf(event);
        entry.endSeq = event.seq;
        break;
      }
      default:
        break;
    }
  }
  for (const [key, entry] of hosts) {
    const real = realExports?.get(key);
    if (real) Object.assign(entry.exports, real);
  }
  // Variables a finished step exported are in force; a step cut short re-merges its own.
  for (const entry of hosts.values()) if (entry.summary) exports.push(entry.exports);
  return { started, hosts, exports };
}
