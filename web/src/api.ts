/**
 * The browser's way to the API: the session token (from login, or a pasted API token) kept in
 * sessionStorage, sent as a Bearer header; errors carry the API's code, message and hint.
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

/** Listeners told when the API answers 401: the session ended, the app shows the login page. */
const onUnauthorized = new Set<() => void>();
export function whenUnauthorized(listener: () => void): () => void {
  onUnauthorized.add(listener);
  return () => onUnauthorized.delete(listener);
}

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const token = currentToken();
  const response = await fetch(path, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  const parsed = text ? safeJson(text) : undefined;
  if (!response.ok) {
    const error = (
      parsed as { error?: { code?: string; message?: string; hint?: string; details?: unknown } }
    )?.error;
    if (response.status === 401 && path !== "/api/auth/login")
      for (const listener of onUnauthorized) listener();
    throw new ApiError(
      response.status,
      error?.code ?? "HTTP_ERROR",
      error?.message ?? `${method} ${path} answered ${response.status}`,
      error?.hint,
      error?.details,
    );
  }
  return parsed as T;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
