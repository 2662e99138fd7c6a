import createClient, { type Client } from "openapi-fetch";
import type { paths } from "./api-types.js";

export type { components, operations, paths } from "./api-types.js";

/**
 * A typed client of runyard's HTTP API: paths, parameters, bodies and responses come from the
 * server's own OpenAPI document (`api-types.ts`, generated and kept in sync by the route tests).
 *
 * ```ts
 * const api = createRunyardClient("http://127.0.0.1:8088", process.env.RUNYARD_TOKEN);
 * const { data, error } = await api.GET("/api/runs/{id}", { params: { path: { id } } });
 * ```
 */
export function createRunyardClient(baseUrl: string, token?: string): Client<paths> {
  return createClient<paths>({
    baseUrl,
    ...(token ? { headers: { authorization: `Bearer ${token}` } } : {}),
  });
}

export {
  newIdempotencyKey,
  type RetryNotice,
  retryAfterMs,
  type SubmitRetryOptions,
  sendIdempotent,
} from "./submit-retry.js";
