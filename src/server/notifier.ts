import { createHmac } from "node:crypto";
import { setTimeout as delay } from "node:timers/promises";
import type { Logger } from "../core/logger.js";
import type { NotifySpec } from "../workflow/model.js";

/** What a webhook receives on every state change (seed 002 section 13.2). */
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

/** `sha256=<hex HMAC of the body>`, GitHub style; receivers recompute it with the shared secret. */
export function signBody(secret: string, body: string): string {
  return `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;
}

/**
 * Posts state changes to a workflow's webhooks, `retry` more times `delayMs` apart when one
 * fails. It never throws: a failure is reported to `onError` (stored as `last_notify_error`)
 * and never changes the run.
 */
export class Notifier {
  constructor(
    private readonly logger: Logger,
    private readonly timeoutMs = 5000,
  ) {}

  async send(target: NotifySpec, change: StateChange, onError: (message: string) => void): Promise<boolean> {
    const body = JSON.stringify(change);
    const headers: Record<string, string> = {
      "content-type": "application/json",
      "user-agent": "runyard-notifier",
    };
    if (target.secret) headers[signatureHeader] = signBody(target.secret, body);
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
}
