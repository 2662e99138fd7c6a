import { RunyardError } from "../core/errors.js";

/** How long one API call may take before it counts as failed. */
const callTimeoutMs = 30_000;

/** A forge's REST API as its client calls it: where, how it is named in errors, what it needs. */
export interface ForgeApi {
  /** "GitLab", "Gitea": how errors name it. */
  name: string;
  /** The REST API's base URL (`https://gitlab.com/api/v4`, `https://codeberg.org/api/v1`). */
  baseUrl: string;
  /** The headers that carry the token, and any other the forge asks for (its media type, its API version). */
  auth: Record<string, string>;
  /** What a 403 or 404 hints (the token's permissions on this forge). */
  permissionHint: string;
}

/**
 * One JSON call to a forge's REST API: a typed FORGE_FAILED when it cannot be reached, does not
 * answer in time or answers an error (a `ForgeApiError` with its status and message, never the
 * token).
 */
export async function callForgeApi(
  api: ForgeApi,
  method: "GET" | "POST",
  path: string,
  body?: unknown,
): Promise<unknown> {
  const url = `${api.baseUrl.replace(/\/$/, "")}${path}`;
  const shown = path || "/";
  let response: Response;
  let text: string;
  try {
    response = await fetch(url, {
      method,
      headers: {
        accept: "application/json",
        "user-agent": "runyard",
        ...api.auth,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(callTimeoutMs),
    });
    text = await response.text();
  } catch (error) {
    const timedOut = error instanceof Error && error.name === "TimeoutError";
    const cause =
      error instanceof Error
        ? error.cause instanceof Error
          ? error.cause.message
          : error.message
        : String(error);
    throw new RunyardError(
      "FORGE_FAILED",
      timedOut
        ? `${api.name} did not answer ${method} ${shown} within ${callTimeoutMs / 1000} s`
        : `${api.name} could not be reached for ${method} ${shown}: ${cause}`,
      {
        hint: `Check that ${api.name} is up and that the server may reach the forge's API URL; the delivery can be sent again from the repo's webhook settings.`,
        cause: error,
      },
    );
  }
  if (!response.ok) throw new ForgeApiError(api, method, shown, response.status, text);
  try {
    return text ? JSON.parse(text) : {};
  } catch {
    throw new RunyardError(
      "FORGE_FAILED",
      `${api.name} answered ${method} ${shown} with a body that is not JSON`,
      {
        hint: "Check the forge's API URL (`runyard forge list`): it must be the REST API's base, such as https://gitlab.example.com/api/v4.",
      },
    );
  }
}

/** A forge API call that failed: its status and the forge's message (never the token). */
export class ForgeApiError extends RunyardError {
  constructor(
    api: ForgeApi,
    method: string,
    path: string,
    readonly forgeStatus: number,
    body: string,
  ) {
    let message = body.slice(0, 300);
    try {
      const parsed = JSON.parse(body) as { message?: unknown; error?: unknown; errors?: unknown };
      const said = parsed.message ?? parsed.error;
      // GitHub adds what each field was refused for: `errors: [{message}]`.
      const details = Array.isArray(parsed.errors)
        ? parsed.errors
            .map((each: { message?: unknown }) => each?.message)
            .filter((m) => typeof m === "string")
        : [];
      const first = said === undefined ? [] : [typeof said === "string" ? said : JSON.stringify(said)];
      if (first.length + details.length > 0) message = [...first, ...details].join(": ");
    } catch {
      // Not JSON: its first bytes as they are.
    }
    super("FORGE_FAILED", `${api.name} answered ${method} ${path} with ${forgeStatus}: ${message}`, {
      hint:
        forgeStatus === 401
          ? "The forge's token is wrong or expired: remove the forge and add it again with a new token."
          : forgeStatus === 403 || forgeStatus === 404
            ? api.permissionHint
            : `See ${api.name}'s status; the delivery can be sent again from the repo's webhook settings.`,
    });
  }
}
