import { silentLogger } from "../../src/core/logger.js";
import { type RunningServer, type ServerOptions, startServer } from "../../src/server/server.js";

export const adminToken = "ryt_in_process_admin_token_0123456789";

/**
 * The whole control plane in this process (in-memory store, port 0 on 127.0.0.1), wired as
 * `runyard server` wires it; tests call `server.app.inject()` or its `url`.
 */
export async function startInProcessServer(extra: Partial<ServerOptions> = {}): Promise<RunningServer> {
  return startServer({
    host: "127.0.0.1",
    port: 0,
    home: undefined,
    adminToken,
    timings: { heartbeatMs: 1000, leaseMs: 5000 },
    reconnectGraceMs: 1000,
    logger: silentLogger,
    version: "0.0.0-test",
    warn: () => {},
    ...extra,
  });
}

/** A token of another kind, made straight in the store; returns its secret. */
export async function makeToken(
  server: RunningServer,
  kind: "user" | "runner" | "admin",
  options: { tenant_id?: string; group?: string } = {},
): Promise<string> {
  const { secret } = await server.store.tokens.create({ kind, name: `${kind}-test`, ...options });
  return secret;
}

/**
 * A member of `tenant` made by the admin through the API and signed in; returns their session
 * token.
 */
export async function signedInMember(
  server: RunningServer,
  username: string,
  tenant: string,
): Promise<string> {
  const password = `${username}-password-1234`;
  const added = await injectJson(server.app, "POST", "/api/users", {
    token: adminToken,
    body: { username, role: "member", password, tenant_id: tenant },
  });
  if (added.status !== 201) throw new Error(`adding ${username}: ${JSON.stringify(added.body)}`);
  const login = await injectJson(server.app, "POST", "/api/auth/login", { body: { username, password } });
  if (login.status !== 200) throw new Error(`signing ${username} in: ${JSON.stringify(login.body)}`);
  return login.body.token as string;
}

/**
 * A runner of `tenant` known to the server (never connected): a tenant's workflows then find a
 * runner group to queue on, and stay queued.
 */
export async function tenantRunnerKnown(server: RunningServer, tenant: string): Promise<void> {
  await server.store.runners.upsert({
    id: `runner-${tenant}`,
    group: "linux",
    labels: [],
    mode: "all",
    capacity: 1,
    hostname: `host-${tenant}`,
    tenant_id: tenant,
  });
}

/**
 * One request to an in-process server, as a client sends it (`Authorization: Bearer`, a JSON
 * body, or a raw one with its content type); the answer's JSON parsed, other text as it is, an
 * empty body as undefined.
 */
export async function injectJson(
  app: RunningServer["app"],
  method: string,
  url: string,
  options: {
    token?: string | undefined;
    body?: unknown;
    raw?: { contentType: string; payload: string };
    address?: string;
  } = {},
  // biome-ignore lint/suspicious/noExplicitAny: tests read answers of many shapes
): Promise<{ status: number; body: any }> {
  const { token, body, raw, address } = options;
  const response = await app.inject({
    method: method as "GET",
    url,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body !== undefined ? { "content-type": "application/json" } : {}),
      ...(raw ? { "content-type": raw.contentType } : {}),
    },
    ...(body !== undefined ? { payload: JSON.stringify(body) } : {}),
    ...(raw ? { payload: raw.payload } : {}),
    ...(address ? { remoteAddress: address } : {}),
  });
  const text = response.body;
  if (text === "") return { status: response.statusCode, body: undefined };
  const json = String(response.headers["content-type"]).startsWith("application/json");
  return { status: response.statusCode, body: json ? JSON.parse(text) : text };
}
