/** OpenAI's error body, shared by the Chat Completions and Responses formats. */
const ERRORS: Record<number, { type: string; code: string | null }> = {
  400: { type: "invalid_request_error", code: null },
  401: { type: "invalid_request_error", code: "invalid_api_key" },
  403: { type: "invalid_request_error", code: "unsupported_country_region_territory" },
  404: { type: "invalid_request_error", code: "model_not_found" },
  429: { type: "requests", code: "rate_limit_exceeded" },
  500: { type: "server_error", code: null },
  503: { type: "server_error", code: "server_is_overloaded" },
};

export function openAiError(status: number, message: string) {
  const { type, code } = ERRORS[status] ?? { type: "server_error", code: null };
  return { error: { message, type, param: null, code } };
}

/** GET /v1/models: the script's model, as OpenAI lists models. */
export function modelList(model: string) {
  return {
    object: "list",
    data: [{ id: model, object: "model", created: 1_700_000_000, owned_by: "runyard-model-server" }],
  };
}

/** OpenAI clients take a base URL with or without `/v1`; accept both. */
export function openAiPath(path: string): string {
  return path.startsWith("/v1/") ? path.slice(3) : path;
}
