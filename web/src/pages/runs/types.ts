/** The few API shapes the runs pages read (src/server/routes/runs.ts, src/core/events.ts). */

export type RunStatus = "queued" | "running" | "success" | "failed" | "canceled" | "timeout" | "interrupted";

export interface ErrorInfo {
  code: string;
  message: string;
  hint?: string;
}

export interface StepSummary {
  name: string;
  host: string;
  status: string;
  exit_code: number | null;
  attempts: number;
  duration_ms?: number;
  error?: ErrorInfo;
}

export interface Run {
  id: string;
  kind: "workflow" | "agent" | "bot";
  name: string;
  status: RunStatus;
  created_by: string | null;
  /** The user (or, with no user, the token's name) behind `created_by`. */
  created_by_name: string | null;
  /** Its variables: those it started with, then what steps exported over them. */
  vars: Record<string, string>;
  /** A workflow run's variables as it started (on `GET /api/runs/:id` only). */
  inputs?: Record<string, string>;
  steps: StepSummary[];
  error: ErrorInfo | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  last_seq: number;
  /** What a queued run waits for; `reason` says it in words (tenant, group, labels, what would serve it). */
  waiting_for?: Array<{
    host: string;
    group: string | null;
    labels: string[];
    tenant_id?: string | null;
    reason?: string;
  }>;
}

export interface RunList {
  runs: Run[];
  next: string | null;
}

/** Any run event; the pages read these fields of the few types they show. */
export interface RunEvent {
  run_id: string;
  seq: number;
  ts: string;
  type: string;
  step?: string;
  host?: string;
  stream?: "stdout" | "stderr";
  data?: string;
  attempt?: number;
  status?: string;
  exit_code?: number | null;
  error?: ErrorInfo;
  vars?: Record<string, string>;
  steps?: StepSummary[];
  name?: string;
}

export interface EventPage {
  events: RunEvent[];
  first_seq: number | null;
  more_before: boolean;
  last_seq: number;
}

export interface Artifact {
  name: string;
  size: number;
  content_type: string;
  url: string;
}

export const finalStatuses = new Set<string>(["success", "failed", "canceled", "timeout", "interrupted"]);
