import { randomBytes, timingSafeEqual } from "node:crypto";
import {
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type Server,
  type ServerResponse,
} from "node:http";
import { request as httpsRequest } from "node:https";
import { codexHomeOf, readCodexConfig } from "../agents/codex-config.js";
import { destinationOf } from "../agents/model-endpoints.js";

/**
 * A loopback HTTP proxy in the runner's process that forwards one turn's model calls to the
 * runner's endpoint with the runner's credentials added, so the turn's CLI (and every command
 * it runs) holds a placeholder instead of the key. It forwards only requests that carry the
 * turn's placeholder, which is random per turn: another process of the machine that finds the
 * port (another run's step shares the host's loopback) gets nothing through it.
 */
export interface ModelKeyProxy {
  /** The base URL the CLI is pointed at: `http://127.0.0.1:<port>`. */
  url: string;
  /** What the CLI sends as its key; the proxy replaces it with the runner's credentials. */
  placeholder: string;
  close(): Promise<void>;
}

export interface ModelKeyProxyOptions {
  /** The runner's endpoint, a base URL the request's path is appended to. */
  upstream: string;
  /** Sent upstream with every request in place of the placeholder (`x-api-key`, a gateway's header). */
  credentials: Readonly<Record<string, string>>;
  /**
   * Which calls carry the credentials (the method, and the path under the base without its
   * query): the model calls of the CLI, never the account's other endpoints (its batches, files,
   * stored responses, users). Absent: every call.
   */
  allows?: (method: string, path: string) => boolean;
}

/** Headers of one hop only, or that carry the placeholder: never forwarded as they came. */
const dropped = new Set([
  "host",
  "connection",
  "keep-alive",
  "proxy-authorization",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
  "x-api-key",
  "x-goog-api-key",
  "authorization",
]);

export async function startModelKeyProxy(options: ModelKeyProxyOptions): Promise<ModelKeyProxy> {
  const upstream = new URL(options.upstream);
  const base = upstream.pathname.replace(/\/+$/, "");
  const placeholder = `runyard-turn-${randomBytes(24).toString("hex")}`;
  const credentialNames = new Set(Object.keys(options.credentials).map((name) => name.toLowerCase()));
  const server: Server = createServer((req, res) => {
    if (!carriesPlaceholder(req.headers, placeholder)) {
      answerError(res, 401, "authentication_error", "not this turn's key");
      return;
    }
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    if (options.allows && !options.allows(req.method ?? "GET", path)) {
      answerError(
        res,
        403,
        "permission_error",
        `${req.method} ${path.slice(0, 100)} is not a model call; a turn on the runner's key makes model calls only`,
      );
      return;
    }
    const headers: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (value === undefined || dropped.has(name) || credentialNames.has(name)) continue;
      headers[name] = value;
    }
    Object.assign(headers, options.credentials);
    const send = upstream.protocol === "https:" ? httpsRequest : httpRequest;
    const outgoing = send(
      {
        protocol: upstream.protocol,
        hostname: upstream.hostname.replace(/^\[|\]$/g, ""),
        port: upstream.port || undefined,
        method: req.method,
        path: `${base}${req.url ?? "/"}`,
        headers,
      },
      (answer) => {
        const answerHeaders: Record<string, string | string[]> = {};
        for (const [name, value] of Object.entries(answer.headers)) {
          if (value !== undefined && !dropped.has(name)) answerHeaders[name] = value;
        }
        res.writeHead(answer.statusCode ?? 502, answerHeaders);
        answer.pipe(res);
        answer.on("error", () => res.destroy());
      },
    );
    outgoing.on("error", (error) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      answerError(res, 502, "api_error", error.message);
    });
    req.pipe(outgoing);
    // The CLI gave up (its turn was stopped): so does the call upstream.
    res.on("close", () => {
      if (!res.writableFinished) outgoing.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    placeholder,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** An error as Anthropic's API words one, from the proxy itself. */
function answerError(res: ServerResponse, status: number, type: string, message: string): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify({ type: "error", error: { type, message: `runyard's model proxy: ${message}` } }));
}

/** Whether the request carries the turn's placeholder as its key (`x-api-key`, `x-goog-api-key`, or a bearer token). */
function carriesPlaceholder(headers: IncomingHttpHeaders, placeholder: string): boolean {
  const keys = [headers["x-api-key"], headers["x-goog-api-key"]].map((value) =>
    typeof value === "string" ? value : undefined,
  );
  const bearer = /^Bearer (.+)$/i.exec(headers.authorization ?? "")?.[1];
  return [...keys, bearer].some((given) => given !== undefined && sameText(given, placeholder));
}

function sameText(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

/** How an agent's CLI is pointed at its model and sends its key, as a proxy takes its place. */
interface ProxiedProvider {
  /** The runner's credentials for it, first found wins: its header or headers. */
  credentials: (env: Readonly<Record<string, string | undefined>>) => Record<string, string> | undefined;
  /** Every variable that carries one of its credentials: none stays in the CLI's env. */
  credentialNames: readonly string[];
  /** Where the CLI reads its endpoint: set to the proxy. */
  baseUrlName: string;
  /**
   * Where the CLI's calls go by the runner's settings, which the proxy forwards to; undefined
   * where they go to a provider no proxy here takes the place of (one of the user's Codex
   * config.toml with its own key, Copilot CLI's GitHub login).
   */
  upstream: (env: Readonly<Record<string, string | undefined>>) => string | undefined;
  /** Where the CLI reads its key: set to the placeholder. */
  keyName: string;
  /** The runner's settings that send the CLI to another provider, whose calls no proxy takes. */
  otherProvider: readonly string[];
  /** Whether the CLI sends its key as the proxy reads it (a bearer token, `x-api-key`), by the runner's settings. */
  sendsKeyAsRead?: (env: Readonly<Record<string, string | undefined>>) => boolean;
  /** The model calls its CLI makes (method, path under the base): the only calls given the key. */
  calls: (method: string, path: string) => boolean;
}

/** Anthropic's model calls, under a base with or without `/v1`: messages, their token counts, the models. */
const anthropicCalls = (method: string, path: string) =>
  (method === "POST" && /^(\/v1)?\/messages(\/count_tokens)?\/?$/.test(path)) ||
  (method === "GET" && /^(\/v1)?\/models(\/[^/]+)?\/?$/.test(path));

/** OpenAI's model calls, under a base with or without `/v1`: responses, chat and embeddings, the models. */
const openAiCalls = (method: string, path: string) =>
  (method === "POST" && /^(\/v1)?\/(responses|chat\/completions|completions|embeddings)\/?$/.test(path)) ||
  (method === "GET" && /^(\/v1)?\/models(\/[^/]+)?\/?$/.test(path));

/** Gemini's model calls: a model's generate, stream, count and embed methods, the models. */
const geminiCalls = (method: string, path: string) =>
  (method === "POST" &&
    /^\/v1(beta|alpha)?\/models\/[^/:]+:(generateContent|streamGenerateContent|countTokens|embedContent|batchEmbedContents)$/.test(
      path,
    )) ||
  (method === "GET" && /^\/v1(beta|alpha)?\/models(\/[^/:]+)?\/?$/.test(path));

const anthropicProvider: ProxiedProvider = {
  credentials: (env) =>
    env.ANTHROPIC_API_KEY || env.ANTHROPIC_AUTH_TOKEN
      ? {
          ...customHeaders(env.ANTHROPIC_CUSTOM_HEADERS),
          ...(env.ANTHROPIC_API_KEY
            ? { "x-api-key": env.ANTHROPIC_API_KEY }
            : { authorization: `Bearer ${env.ANTHROPIC_AUTH_TOKEN}` }),
        }
      : undefined,
  credentialNames: [
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_CUSTOM_HEADERS",
    "CLAUDE_CODE_OAUTH_TOKEN",
  ],
  baseUrlName: "ANTHROPIC_BASE_URL",
  upstream: (env) => env.ANTHROPIC_BASE_URL || "https://api.anthropic.com",
  keyName: "ANTHROPIC_API_KEY",
  otherProvider: ["CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_USE_VERTEX", "CLAUDE_CODE_USE_FOUNDRY"],
  calls: anthropicCalls,
};

const geminiProvider: ProxiedProvider = {
  credentials: (env) => {
    const key = env.GEMINI_API_KEY || env.GOOGLE_API_KEY;
    return key ? { "x-goog-api-key": key } : undefined;
  },
  credentialNames: ["GEMINI_API_KEY", "GOOGLE_API_KEY"],
  baseUrlName: "GOOGLE_GEMINI_BASE_URL",
  upstream: (env) => env.GOOGLE_GEMINI_BASE_URL || "https://generativelanguage.googleapis.com",
  keyName: "GEMINI_API_KEY",
  otherProvider: ["GOOGLE_GENAI_USE_VERTEXAI", "GOOGLE_GENAI_USE_GCA"],
  calls: geminiCalls,
};

const OPENAI_URL = "https://api.openai.com/v1";

/**
 * Codex's OpenAI endpoint, with its key as a bearer token (runyard's adapter makes the proxy a
 * provider of its own, as it does for the runner's `OPENAI_BASE_URL`): the runner's
 * `OPENAI_BASE_URL`, else the built-in `openai` provider of the user's config.toml (its
 * `openai_base_url`, else OpenAI's). Not where that file selects a provider of its own, which
 * has its own key (`env_key`) and settings a proxy would replace.
 */
const codexProvider: ProxiedProvider = {
  credentials: (env) => (env.OPENAI_API_KEY ? { authorization: `Bearer ${env.OPENAI_API_KEY}` } : undefined),
  credentialNames: ["OPENAI_API_KEY", "CODEX_API_KEY"],
  baseUrlName: "OPENAI_BASE_URL",
  upstream: (env) => {
    if (env.OPENAI_BASE_URL) return env.OPENAI_BASE_URL;
    const home = codexHomeOf({}, env);
    const config = home ? readCodexConfig(home.home) : undefined;
    if (config?.provider && config.provider !== "openai") return undefined;
    return config?.baseUrl || OPENAI_URL;
  },
  keyName: "OPENAI_API_KEY",
  otherProvider: [],
  calls: openAiCalls,
};

/**
 * OpenCode's built-in providers, each read from the env: `OPENAI_BASE_URL` and
 * `ANTHROPIC_BASE_URL` are the whole base (`.../v1`), where OpenCode adds `/responses` and
 * `/messages`. A member's turn on a sandboxing runner has no config of its user's (its `$HOME`
 * is empty), so the env is all it goes by.
 */
const openCodeProviders: ProxiedProvider[] = [
  {
    ...codexProvider,
    credentialNames: ["OPENAI_API_KEY"],
    upstream: (env) => env.OPENAI_BASE_URL || OPENAI_URL,
  },
  {
    credentials: (env) => (env.ANTHROPIC_API_KEY ? { "x-api-key": env.ANTHROPIC_API_KEY } : undefined),
    credentialNames: ["ANTHROPIC_API_KEY"],
    baseUrlName: "ANTHROPIC_BASE_URL",
    upstream: (env) => env.ANTHROPIC_BASE_URL || "https://api.anthropic.com/v1",
    keyName: "ANTHROPIC_API_KEY",
    otherProvider: [],
    calls: anthropicCalls,
  },
];

/**
 * Copilot CLI's own provider (BYOK, `COPILOT_PROVIDER_BASE_URL`, OpenAI's wire format unless
 * `COPILOT_PROVIDER_TYPE` says otherwise), whose key it sends as a bearer token; with it the CLI
 * runs offline and needs no GitHub login, so `GH_TOKEN` and `COPILOT_GITHUB_TOKEN` stay out too.
 * Without it Copilot CLI logs in to GitHub, which no proxy here takes.
 */
const copilotProvider: ProxiedProvider = {
  credentials: (env) => {
    const key = env.COPILOT_PROVIDER_API_KEY || env.COPILOT_PROVIDER_BEARER_TOKEN;
    return key ? { authorization: `Bearer ${key}` } : undefined;
  },
  credentialNames: [
    "COPILOT_PROVIDER_API_KEY",
    "COPILOT_PROVIDER_BEARER_TOKEN",
    "COPILOT_GITHUB_TOKEN",
    "GH_TOKEN",
  ],
  baseUrlName: "COPILOT_PROVIDER_BASE_URL",
  upstream: (env) => env.COPILOT_PROVIDER_BASE_URL || undefined,
  keyName: "COPILOT_PROVIDER_API_KEY",
  otherProvider: [],
  sendsKeyAsRead: (env) => !env.COPILOT_PROVIDER_TYPE || env.COPILOT_PROVIDER_TYPE === "openai",
  calls: openAiCalls,
};

/** The agents whose model calls a proxy can take: the providers their CLI calls. */
const proxiedProviders: Record<string, readonly ProxiedProvider[]> = {
  claude_code: [anthropicProvider],
  gemini: [geminiProvider],
  codex: [codexProvider],
  opencode: openCodeProviders,
  copilot: [copilotProvider],
};

/**
 * A member's turn of `agent` with the runner's keys kept out of it: a proxy started for the turn
 * per provider its CLI calls, and the runner's env as the turn sees it (each provider's
 * credentials taken out, its endpoint set to its proxy, a placeholder as its key). Undefined
 * where no proxy applies: a task that brings its own credential for the provider, a runner
 * without a key for it, one that sends the CLI to another provider (Bedrock, Vertex, a provider
 * of Codex's config.toml, Copilot CLI's GitHub login).
 */
export async function keyProxyFor(
  agent: string,
  runnerEnv: Readonly<Record<string, string | undefined>>,
  taskEnv: Readonly<Record<string, string>>,
): Promise<{ proxies: ModelKeyProxy[]; env: Record<string, string | undefined> } | undefined> {
  const env: Record<string, string | undefined> = { ...runnerEnv };
  const proxies: ModelKeyProxy[] = [];
  for (const provider of proxiedProviders[agent] ?? []) {
    if (provider.credentialNames.some((name) => taskEnv[name])) continue;
    if (provider.otherProvider.some((name) => truthy(runnerEnv[name]))) continue;
    if (provider.sendsKeyAsRead && !provider.sendsKeyAsRead(runnerEnv)) continue;
    const credentials = provider.credentials(runnerEnv);
    const upstream = provider.upstream(runnerEnv);
    // An endpoint that is no http(s) URL is left to the CLI, which says what is wrong with it.
    if (!credentials || !upstream || !destinationOf(upstream)) continue;
    const proxy = await startModelKeyProxy({ upstream, credentials, allows: provider.calls }).catch(
      async (error: unknown) => {
        await Promise.all(proxies.map((started) => started.close()));
        throw error;
      },
    );
    proxies.push(proxy);
    for (const name of provider.credentialNames) delete env[name];
    env[provider.baseUrlName] = proxy.url;
    env[provider.keyName] = proxy.placeholder;
  }
  return proxies.length > 0 ? { proxies, env } : undefined;
}

/** Claude Code's `ANTHROPIC_CUSTOM_HEADERS`: `Name: value`, one a line. */
function customHeaders(text: string | undefined): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const line of (text ?? "").split("\n")) {
    const at = line.indexOf(":");
    if (at <= 0) continue;
    const name = line.slice(0, at).trim().toLowerCase();
    if (/^[!#$%&'*+.^_`|~0-9a-z-]+$/.test(name)) headers[name] = line.slice(at + 1).trim();
  }
  return headers;
}

function truthy(value: string | undefined): boolean {
  return value !== undefined && value !== "" && value !== "0" && value.toLowerCase() !== "false";
}
