import { setTimeout as delay } from "node:timers/promises";
import { z } from "zod";
import { type ErrorCode, errorTable, RunyardError } from "../core/errors.js";

/** What `uploadArtifact` sends: one artifact of a job leased to this runner. */
export interface ArtifactUpload {
  /**
   * The runner's server URLs, as configured (http(s):// or ws(s)://); tried in order while one
   * cannot be reached, as the runner's socket fails over between replicas.
   */
  serverUrls: readonly string[];
  /** The runner token the runner connected with: the server checks the job is leased to it. */
  token: string;
  jobId: string;
  /** `[A-Za-z0-9._-]{1,100}`, not starting with `.`; an upload under a name the run has replaces it. */
  name: string;
  /** `text/plain`, `application/x-ndjson`, `text/x-diff` or `application/octet-stream`. */
  contentType: string;
  /** UTF-8 text: a diff, a JSONL transcript, test output, a log. */
  content: string;
  signal?: AbortSignal;
  /**
   * Tries after the first, for a server error or no server reachable (the agent runner's
   * `network_retry_count`); default 3.
   */
  retries?: number;
}

/** Where the server stored it, and what it stored. */
export interface UploadedArtifact {
  /** `/api/runs/<run>/artifacts/<name>`, to read it back with a user's token. */
  path: string;
  /** Bytes of the content as UTF-8. */
  size: number;
  /** Hex SHA-256 of the content's UTF-8 bytes. */
  sha256: string;
}

const Stored = z.object({ name: z.string(), size: z.number(), sha256: z.string(), path: z.string() });

/** Tries after the first, for a server error or no server reachable; the waits double from the first. */
const defaultRetries = 3;
const firstRetryMs = 250;

/**
 * Uploads an artifact (`PUT /api/jobs/:job_id/artifacts/:name`). A server that cannot be reached is
 * skipped for the next URL; a 5xx or no server at all is retried with exponential backoff (an
 * upload under the same name replaces, so sending it twice is harmless). A 4xx is the server's
 * refusal and is thrown at once as a RunyardError with the server's code, message and hint.
 * Call it before the job's `finished`: a finished job's artifacts are refused (CONFLICT).
 */
export async function uploadArtifact(upload: ArtifactUpload): Promise<UploadedArtifact> {
  if (upload.serverUrls.length === 0) throw new Error("an artifact upload needs at least one server URL");
  const path = `/api/jobs/${encodeURIComponent(upload.jobId)}/artifacts/${encodeURIComponent(upload.name)}`;
  const init: RequestInit = {
    method: "PUT",
    headers: { authorization: `Bearer ${upload.token}`, "content-type": upload.contentType },
    body: upload.content,
    ...(upload.signal ? { signal: upload.signal } : {}),
  };
  let current = 0;
  let failure: RunyardError | undefined;
  const retries = upload.retries ?? defaultRetries;
  for (let attempt = 0; attempt <= retries; attempt += 1) {
    if (attempt > 0) await delay(firstRetryMs * 2 ** (attempt - 1), undefined, { signal: upload.signal });
    let response: Response | undefined;
    const unreachable: string[] = [];
    for (let tried = 0; tried < upload.serverUrls.length && !response; tried += 1) {
      const server = upload.serverUrls[current] ?? "";
      try {
        response = await fetch(new URL(path, httpBase(server)), init);
      } catch (error) {
        if (upload.signal?.aborted) throw error;
        unreachable.push(`${server}: ${connectionError(error)}`);
        current = (current + 1) % upload.serverUrls.length;
      }
    }
    if (!response) {
      failure = new RunyardError(
        "HOST_UNREACHABLE",
        `cannot upload artifact ${upload.name}: ${unreachable.join("; ")}`,
        {
          hint: "Check that the server (RUNYARD_SERVER_URL) is up and this machine reaches it.",
        },
      );
      continue;
    }
    const text = await response.text();
    if (response.ok) {
      const stored = Stored.parse(JSON.parse(text));
      return { path: stored.path, size: stored.size, sha256: stored.sha256 };
    }
    failure = refusal(upload.name, response.status, text);
    if (response.status < 500) throw failure;
  }
  throw failure ?? new Error("unreachable");
}

/** The HTTP base of a server URL as configured: the runner's socket turns http into ws, this turns it back. */
function httpBase(serverUrl: string): string {
  return serverUrl.replace(/^ws/i, "http");
}

function connectionError(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (error as Error).message;
}

/** The server's error body as a RunyardError (code, message, hint), whatever the body holds. */
function refusal(name: string, status: number, text: string): RunyardError {
  let body: { error?: { code?: string; message?: string; hint?: string; details?: unknown } } | undefined;
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    body = undefined;
  }
  const error = body?.error;
  const code: ErrorCode =
    error?.code && error.code in errorTable
      ? (error.code as ErrorCode)
      : status >= 500
        ? "INTERNAL"
        : "INVALID_INPUT";
  const what = status >= 500 ? "could not be stored" : "was refused";
  return new RunyardError(code, `artifact ${name} ${what}: ${error?.message ?? `HTTP ${status}`}`, {
    ...(error?.hint ? { hint: error.hint } : {}),
    details: error?.details,
  });
}
