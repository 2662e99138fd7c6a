import {
  type components,
  createRunyardClient,
  type operations,
  type RetryNotice,
  sendIdempotent,
} from "../../src/client/index.js";

/**
 * The browser's way to the API: the typed client of src/client (paths, parameters, bodies and
 * answers from the server's OpenAPI document), with the session token (from login, or a pasted
 * API token) kept in sessionStorage and sent as a Bearer header; errors carry the API's code,
 * message and hint.
 */

const tokenKey = "runyard.token";

export function currentToken(): string | null {
  return sessionStorage.getItem(tokenKey);
}

export function setToken(token: string | null): void {
  if (token === null) sessionStorage.removeItem(tokenKey);
  else sessionStorage.setItem(tokenKey, token);
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly hint: string | undefined,
    readonly details: unknown,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

/** A failure as the pages show it: the API's error as it is, anything else (the network) as `NETWORK`. */
export function asApiError(caught: unknown): ApiError {
  return caught instanceof ApiError
    ? caught
    : new ApiError(0, "NETWORK", String(caught), undefined, undefined);
}

/** A schema of the API's OpenAPI document by name: `Schema<"Run">`. */
export type Schema<Name extends keyof components["schemas"]> = components["schemas"][Name];

/** The JSON body an operation answers with (by its operationId), for a status: `AnswerOf<"whoami">`. */
export type AnswerOf<
  Operation extends keyof operations,
  Status extends number = 200,
> = operations[Operation]["responses"] extends {
  [S in Status]: { content: { "application/json": infer Body } };
}
  ? Body
  : never;

/** The JSON body an operation takes (by its operationId): `BodyOf<"startBot">`. */
export type BodyOf<Operation extends keyof operations> = operations[Operation] extends {
  requestBody?: { content: { "application/json": infer Body } };
}
  ? Body
  : never;

/** Listeners told when the API answers 401: the session ended, the app shows the login page. */
const onUnauthorized = new Set<() => void>();
export function whenUnauthorized(listener: () => void): () => void {
  onUnauthorized.add(listener);
  return () => onUnauthorized.delete(listener);
}

/** The API, typed: `api.GET("/api/runs/{id}", { params: { path: { id } } })`; pass the call to `answer`. */
export const api = createRunyardClient(window.location.origin);

api.use({
  // Read at each request: logging in or out changes the token without a new client.
  onRequest({ request }) {
    const token = currentToken();
    if (token) request.headers.set("authorization", `Bearer ${token}`);
    // A person in the browser: the runs submitted here record the trigger `manual`.
    request.headers.set("x-runyard-trigger", "manual");
    return request;
  },
  onResponse({ response, schemaPath }) {
    // A wrong password is not the end of a session.
    if (response.status === 401 && schemaPath !== "/api/auth/login")
      for (const listener of onUnauthorized) listener();
    return response;
  },
});

/**
 * The body of an error answer: the API's `Error` schema, or the text of whatever else answered
 * (a proxy's page), or nothing.
 */
type ErrorBody = components["schemas"]["Error"] | string | undefined;

/** The answer of a call of `api`: its typed body, or an ApiError with the API's code, message and hint. */
export async function answer<Data>(
  call: Promise<{ data?: Data; error?: ErrorBody; response: Response }>,
): Promise<Data> {
  const { data, error, response } = await call;
  if (response.ok && data !== undefined) return data;
  const body = error && typeof error === "object" ? error.error : undefined;
  const where = response.url ? new URL(response.url).pathname : "the API";
  throw new ApiError(
    response.status,
    body?.code ?? "HTTP_ERROR",
    body?.message ??
      (response.ok
        ? `${where} answered ${response.status} with no body`
        : `${where} answered ${response.status}`),
    body?.hint,
    body?.details,
  );
}

/** How long a submit is sent again while the server answers 503 or the connection drops (as the CLI's default). */
const submitRetryForMs = 120_000;

/** A submit being sent again, as the page shows it; null when none is. */
export type SubmitRetry = (RetryNotice & { path: string }) | null;

const onRetry = new Set<(retry: SubmitRetry) => void>();
export function whenRetrying(listener: (retry: SubmitRetry) => void): () => void {
  onRetry.add(listener);
  return () => onRetry.delete(listener);
}
const tell = (retry: SubmitRetry): void => {
  for (const listener of onRetry) listener(retry);
};

/**
 * The fetch of a call that creates something (a run, a bot, an answer): `api.POST(path, { body,
 * ...asSubmit })`. It carries a new `Idempotency-Key`, and is sent again with the same key after
 * a 503, a 409 IDEMPOTENCY_KEY_IN_USE or a connection lost before the answer, honouring
 * Retry-After, for up to 2 minutes; the server answers a key it answered with that answer, so the
 * thing is created once (docs/api.md).
 */
export const asSubmit = {
  fetch: async (request: Request): Promise<Response> => {
    const path = new URL(request.url).pathname;
    try {
      return await sendIdempotent(
        (key) => {
          const attempt = request.clone();
          attempt.headers.set("idempotency-key", key);
          return fetch(attempt);
        },
        {
          retryForMs: submitRetryForMs,
          // A browser says no more of a failed fetch than TypeError: the answer never came.
          droppedConnection: (error) =>
            error instanceof TypeError ? "the connection failed before an answer" : undefined,
          onRetry: (notice) => tell({ ...notice, path }),
        },
      );
    } finally {
      tell(null);
    }
  },
};
