import { RunyardError } from "../../core/errors.js";

/** What the runner was doing when the API answered: the verb and resource RBAC names. */
export interface KubeCall {
  verb: "create" | "get" | "list" | "watch" | "delete";
  /** As RBAC names it: `jobs`, `secrets`, `networkpolicies`, `pods`, `pods/log`, `namespaces`. */
  resource: string;
  namespace: string;
  /** The API server's URL. */
  server: string;
}

/** The Role in deploy/kubernetes that grants the runner what it does. */
export const runnerRoleFile = "deploy/kubernetes/runner-role.yaml";

/** A Status object as the API server sends it with an error. */
interface KubeStatus {
  message?: string;
  reason?: string;
  details?: { kind?: string; name?: string };
}

/**
 * Turns what a call of the client threw into a typed error the operator can act on: the API
 * server unreachable (with its URL), 401, 403 (the verb and resource the runner lacks, and the
 * Role that grants them), a missing namespace (a 404, or a 403 where namespaces cannot be read:
 * the message names both causes), anything else with the API's own message. Already typed
 * errors pass through.
 */
export function kubeFault(error: unknown, call: KubeCall): RunyardError {
  if (error instanceof RunyardError) return error;
  const code = apiStatusCode(error);
  const where = `${call.verb} ${call.resource} in namespace ${call.namespace}`;
  if (code === undefined) {
    const cause = networkCause(error);
    return new RunyardError(
      "KUBE_UNREACHABLE",
      `cannot reach the Kubernetes API server at ${call.server} (${where}): ${cause}`,
      { cause: error },
    );
  }
  const status = statusOf(error);
  const said = status.message ?? (error as Error).message;
  if (code === 401) {
    return new RunyardError(
      "KUBE_UNAUTHORIZED",
      `the Kubernetes API server at ${call.server} refused the runner's credentials (401 Unauthorized) to ${where}: ${said}`,
      { cause: error },
    );
  }
  if (code === 404 && (status.details?.kind === "namespaces" || /namespaces? "[^"]*" not found/.test(said))) {
    return namespaceMissing(call, `the API answered 404: ${said}`);
  }
  if (code === 403) {
    if (call.resource === "namespaces") {
      return namespaceMissing(call, `the runner may not read namespaces (403: ${said})`);
    }
    return new RunyardError(
      "KUBE_FORBIDDEN",
      `the runner may not ${call.verb} ${call.resource} in namespace ${call.namespace} (403 Forbidden): ${said}`,
      {
        hint: `Bind the runner's ServiceAccount to the Role in ${runnerRoleFile} (it grants ${call.verb} on ${call.resource}) in namespace ${call.namespace}, or add that verb and resource to the Role it has.`,
        cause: error,
      },
    );
  }
  return new RunyardError(
    "KUBE_API_ERROR",
    `the Kubernetes API refused to ${where} (${code}${status.reason ? ` ${status.reason}` : ""}): ${said}`,
    { cause: error },
  );
}

function namespaceMissing(call: KubeCall, detail: string): RunyardError {
  return new RunyardError(
    "KUBE_NAMESPACE_MISSING",
    `namespace ${call.namespace} does not exist, or the runner may not see it: ${detail}`,
    { cause: undefined },
  );
}

/** The HTTP status of an `ApiException` (the client's error for an answer that is not 2xx). */
export function apiStatusCode(error: unknown): number | undefined {
  if (typeof error !== "object" || error === null) return undefined;
  // An ApiException says `code`; a refused watch, `statusCode`.
  const { code, statusCode } = error as { code?: unknown; statusCode?: unknown };
  const status = typeof code === "number" ? code : statusCode;
  return typeof status === "number" && status >= 100 && status < 600 ? status : undefined;
}

function statusOf(error: unknown): KubeStatus {
  const body = (error as { body?: unknown }).body;
  if (typeof body === "object" && body !== null) return body as KubeStatus;
  if (typeof body === "string") {
    try {
      const parsed: unknown = JSON.parse(body);
      if (typeof parsed === "object" && parsed !== null) return parsed as KubeStatus;
    } catch {
      // Not a Status object: the API's text is kept as the message.
      return { message: body.trim().slice(0, 500) };
    }
  }
  return {};
}

/** The system's reason a request never got an answer (ECONNREFUSED, a TLS failure, a timeout). */
function networkCause(error: unknown): string {
  let current: unknown = error;
  for (let depth = 0; depth < 4 && current; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === "string" && code !== "") return `${code}: ${(current as Error).message}`;
    current = (current as { cause?: unknown }).cause;
  }
  return error instanceof Error ? error.message : String(error);
}
