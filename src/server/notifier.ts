import { setTimeout as delay } from "node:timers/promises";
import { RunyardError } from "../core/errors.js";
import type { RunEvent } from "../core/events.js";
import { assertExhaustive } from "../core/exhaustive.js";
import type { Logger } from "../core/logger.js";
import type { RunsRepo } from "../store/index.js";
import type { NotifySpec } from "../workflow/model.js";
import type { EventBus } from "./event-bus.js";
import { signBody } from "./hooks/hook-signature.js";
import { guardedRequest } from "./outbound/guarded-http.js";
import { OutboundPolicy } from "./outbound/outbound-policy.js";

/** What a webhook receives on every state change (the notifier's fields). */
export interface StateChange {
  run_id: string;
  workflow_name: string;
  status: string;
  step: string | null;
  host: string | null;
  timestamp: string;
  error: string | null;
  /** Grows with every change of the run: the event seq that caused it. Receivers drop older versions. */
  version: number;
}

export const signatureHeader = "x-runyard-signature";
/** How long one notify POST may take (a workflow's, and a bot alert's). */
export const notifyTimeoutMs = 5000;

/** Notifications are signed as GitHub signs a hook's delivery; receivers recompute it with the shared secret. */
export { signBody };

/** The state change an event is, if it is one a webhook is told of. */
export function stateChangeOf(event: RunEvent, workflowName: string): StateChange | undefined {
  const base = { run_id: event.run_id, workflow_name: workflowName, timestamp: event.ts, version: event.seq };
  switch (event.type) {
    case "run.queued":
      return { ...base, status: "queued", step: null, host: null, error: null };
    case "run.started":
      return { ...base, status: "running", step: null, host: null, error: null };
    case "run.finished":
      return { ...base, status: event.status, step: null, host: null, error: event.error?.message ?? null };
    case "step.started":
      return { ...base, status: "running", step: event.step, host: event.host, error: null };
    case "step.finished":
      return {
        ...base,
        status: event.status,
        step: event.step,
        host: event.host,
        error: event.error?.message ?? null,
      };
    case "step.waiting":
      // A receiver can page the approvers: the run waits for a person.
      return { ...base, status: "waiting", step: event.step, host: event.host, error: null };
    case "step.output":
    case "step.retrying":
    case "approval.answered":
    case "step.called":
    case "approval.vote":
    case "vars.exported":
    case "artifact.created":
    case "agent.message":
    case "agent.tool_call":
    case "agent.tool_result":
    case "agent.usage":
    case "bot.state":
    case "notice":
      return undefined;
    default:
      return assertExhaustive(event, "event");
  }
}

/**
 * Posts state changes to a workflow's webhooks, `retry` more times `delayMs` apart. Never throws: a
 * failure is stored as the run's `last_notify_error` and never changes the run.
 */
export class Notifier {
  private readonly allowed: OutboundPolicy;
  private readonly timeoutMs: number;
  /** The runs followed now, and how each stops. */
  private readonly following = new Map<string, () => void>();

  constructor(
    private readonly bus: EventBus,
    private readonly runs: Pick<RunsRepo, "update">,
    private readonly logger: Logger,
    /** `allowed`: the server's `notify_hosts:` (none: only public addresses); `timeoutMs`: per POST (5 s). */
    options: { allowed?: OutboundPolicy; timeoutMs?: number } = {},
  ) {
    this.allowed = options.allowed ?? new OutboundPolicy("notify_hosts", []);
    this.timeoutMs = options.timeoutMs ?? notifyTimeoutMs;
  }

  /** Why a member's run may not notify `url`, when that is known before any DNS lookup. */
  refusalOf(url: string): RunyardError | undefined {
    return this.allowed.refusalOf(url);
  }

  /**
   * Tells `targets` of a run's state changes (stored events on the bus) until it finishes; returns the
   * unsubscribe. Unless `unrestricted` (a platform admin's run), only `notify_hosts:` destinations are
   * called, and a failure shows as a typed error alone.
   */
  follow(
    runId: string,
    workflowName: string,
    targets: readonly NotifySpec[],
    unrestricted: boolean,
  ): () => void {
    if (targets.length === 0) return () => undefined;
    // A run parked and started again follows once: its first follow still listens.
    const following = this.following.get(runId);
    if (following) return following;
    const unsubscribe = this.bus.subscribe(runId, (event) => {
      const change = stateChangeOf(event, workflowName);
      if (change) {
        for (const target of targets) {
          const onError = (message: string): void => {
            void this.runs.update(runId, { last_notify_error: message });
          };
          void (unrestricted ? this.send(target, change, onError) : this.sendSealed(target, change, onError));
        }
      }
      if (event.type === "run.finished") stop();
    });
    const stop = (): void => {
      unsubscribe();
      this.following.delete(runId);
    };
    this.following.set(runId, stop);
    return stop;
  }

  async send(target: NotifySpec, change: StateChange, onError: (message: string) => void): Promise<boolean> {
    const { body, headers } = notification(target, change);
    let lastError = "";
    for (let attempt = 0; attempt <= target.retry; attempt++) {
      if (attempt > 0) await delay(target.delayMs);
      try {
        const response = await fetch(target.url, {
          method: "POST",
          headers,
          body,
          signal: AbortSignal.timeout(this.timeoutMs),
        });
        await response.arrayBuffer();
        if (response.ok) return true;
        lastError = `${target.url} answered HTTP ${response.status}`;
      } catch (error) {
        const cause = (error as { cause?: { code?: string } }).cause?.code;
        lastError = `${target.url}: ${cause ?? (error instanceof Error ? error.message : String(error))}`;
      }
    }
    const message = `notify failed after ${target.retry + 1} attempt${target.retry === 0 ? "" : "s"}: ${lastError}`;
    this.logger.warn({ runId: change.run_id, url: target.url }, message);
    onError(message);
    return false;
  }

  /**
   * `send` for a member's run, through `notify_hosts:`: a failure is recorded as `NOTIFY_FAILED` with the
   * HTTP status at most (the receiver's words go to the log only), never sooner than the slowest failure,
   * so the time does not tell a closed port from an open one either.
   */
  async sendSealed(
    target: NotifySpec,
    change: StateChange,
    onError: (message: string) => void,
  ): Promise<boolean> {
    const startedAt = performance.now();
    const floorMs = (target.retry + 1) * this.timeoutMs + target.retry * target.delayMs;
    const { body, headers } = notification(target, change);
    let detail = "";
    let status: number | undefined;
    let refusal: RunyardError | undefined;
    for (let attempt = 0; attempt <= target.retry; attempt++) {
      if (attempt > 0) await delay(target.delayMs);
      try {
        const answer = await guardedRequest(this.allowed, {
          method: "POST",
          url: target.url,
          headers,
          body,
          signal: AbortSignal.timeout(this.timeoutMs),
        });
        if (answer.status >= 200 && answer.status < 300) return true;
        status = answer.status;
        detail = `HTTP ${answer.status}: ${answer.text.slice(0, 500)}`;
      } catch (error) {
        if (error instanceof RunyardError) {
          refusal = error;
          detail = error.message;
          break;
        }
        status = undefined;
        const cause = (error as { cause?: { code?: string } }).cause?.code;
        detail = cause ?? (error instanceof Error ? error.message : String(error));
      }
    }
    this.logger.warn({ runId: change.run_id, url: target.url }, `notify failed: ${detail}`);
    const attempts = `${target.retry + 1} attempt${target.retry === 0 ? "" : "s"}`;
    const message = refusal
      ? `${refusal.code}: ${refusal.message}`
      : `NOTIFY_FAILED: notify failed after ${attempts}: ${status === undefined ? "could not reach the receiver" : `the receiver answered HTTP ${status}`}`;
    const wait = startedAt + floorMs - performance.now();
    if (wait > 0) await delay(wait);
    onError(message);
    return false;
  }
}

/** A state change as the body every receiver gets, signed when the target has a secret. */
function notification(
  target: NotifySpec,
  change: StateChange,
): { body: string; headers: Record<string, string> } {
  const body = JSON.stringify(change);
  const headers: Record<string, string> = {
    "content-type": "application/json",
    "user-agent": "runyard-notifier",
  };
  if (target.secret) headers[signatureHeader] = signBody(target.secret, body);
  return { body, headers };
}
