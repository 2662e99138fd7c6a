import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { keyProxyFor, type ModelKeyProxy, startModelKeyProxy } from "./model-key-proxy.js";

let upstream: Server | undefined;
let proxy: ModelKeyProxy | undefined;
const seen: Array<{ path: string; headers: IncomingHttpHeaders; body: string }> = [];

async function startUpstream(): Promise<string> {
  upstream = createServer((req, res) => {
    let body = "";
    req.on("data", (chunk) => {
      body += chunk;
    });
    req.on("end", () => {
      seen.push({ path: req.url ?? "", headers: req.headers, body });
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ ok: true }));
    });
  });
  await new Promise<void>((resolve) => upstream?.listen(0, "127.0.0.1", resolve));
  const address = upstream.address();
  return `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}/gateway`;
}

afterEach(async () => {
  await proxy?.close();
  proxy = undefined;
  await new Promise<void>((resolve) => (upstream ? upstream.close(() => resolve()) : resolve()));
  upstream = undefined;
  seen.length = 0;
});

describe("the model key proxy", () => {
  it("forwards a call that carries the turn's placeholder with the runner's key in its place", async () => {
    proxy = await startModelKeyProxy({
      upstream: await startUpstream(),
      credentials: { "x-api-key": "sk-real" },
    });
    const answer = await fetch(`${proxy.url}/v1/messages`, {
      method: "POST",
      headers: { "x-api-key": proxy.placeholder, "content-type": "application/json" },
      body: '{"model":"m"}',
    });
    expect(answer.status).toBe(200);
    expect(seen).toHaveLength(1);
    expect(seen[0]?.path).toBe("/gateway/v1/messages");
    expect(seen[0]?.headers["x-api-key"]).toBe("sk-real");
    expect(seen[0]?.body).toBe('{"model":"m"}');
  });

  it("refuses a call without the placeholder, and forwards nothing", async () => {
    proxy = await startModelKeyProxy({
      upstream: await startUpstream(),
      credentials: { "x-api-key": "sk-real" },
    });
    const guesses: Record<string, string>[] = [
      {},
      { "x-api-key": "guess" },
      { authorization: "Bearer guess" },
    ];
    for (const headers of guesses) {
      expect((await fetch(`${proxy.url}/v1/messages`, { method: "POST", headers, body: "{}" })).status).toBe(
        401,
      );
    }
    expect(seen).toHaveLength(0);
  });

  it("gives a Claude Code turn the proxy as its endpoint and a placeholder as its key, and its gateway's headers to the proxy", async () => {
    const url = await startUpstream();
    const made = await keyProxyFor(
      "claude_code",
      {
        PATH: "/usr/bin",
        ANTHROPIC_API_KEY: "sk-real",
        ANTHROPIC_BASE_URL: url,
        ANTHROPIC_CUSTOM_HEADERS: "x-gateway-key: gw-secret",
      },
      {},
    );
    expect(made).toBeDefined();
    proxy = made?.proxies[0];
    expect(made?.env.ANTHROPIC_BASE_URL).toBe(proxy?.url);
    expect(made?.env.ANTHROPIC_API_KEY).toBe(proxy?.placeholder);
    expect(made?.env.ANTHROPIC_CUSTOM_HEADERS).toBeUndefined();
    await fetch(`${proxy?.url}/v1/messages`, {
      method: "POST",
      headers: { "x-api-key": proxy?.placeholder ?? "" },
    });
    expect(seen[0]?.headers["x-gateway-key"]).toBe("gw-secret");
    expect(seen[0]?.headers["x-api-key"]).toBe("sk-real");
  });

  it("gives a Codex turn without the runner's OPENAI_BASE_URL a proxy to the endpoint of its user's built-in openai provider", async () => {
    const home = mkdtempSync(join(tmpdir(), "codex-home-"));
    try {
      writeFileSync(join(home, "config.toml"), 'openai_base_url = "https://gateway.example/v1"\n');
      const proxied = await keyProxyFor("codex", { OPENAI_API_KEY: "sk-real", CODEX_HOME: home }, {});
      expect(proxied).toBeDefined();
      await Promise.all(proxied!.proxies.map((proxy) => proxy.close()));
      expect(proxied!.env.OPENAI_BASE_URL).toBe(proxied!.proxies[0]!.url);
      expect(proxied!.env.OPENAI_API_KEY).toBe(proxied!.proxies[0]!.placeholder);
      // A provider of the user's own, with its own key and settings, is left to Codex.
      writeFileSync(
        join(home, "config.toml"),
        'model_provider = "corp"\n[model_providers.corp]\nbase_url = "https://corp.example/v1"\nenv_key = "CORP_KEY"\n',
      );
      expect(await keyProxyFor("codex", { OPENAI_API_KEY: "sk-real", CODEX_HOME: home }, {})).toBeUndefined();
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });

  it("starts none for a task that brings its own key, or for Copilot CLI logged in to GitHub", async () => {
    expect(
      await keyProxyFor("claude_code", { ANTHROPIC_API_KEY: "sk-real" }, { ANTHROPIC_API_KEY: "own" }),
    ).toBeUndefined();
    expect(await keyProxyFor("copilot", { COPILOT_GITHUB_TOKEN: "gho_real" }, {})).toBeUndefined();
    // An endpoint that is no http(s) URL is left to the CLI, which says what is wrong with it.
    expect(
      await keyProxyFor("claude_code", { ANTHROPIC_API_KEY: "sk-real", ANTHROPIC_BASE_URL: "not a url" }, {}),
    ).toBeUndefined();
  });
});

describe("a member's turn through the runner's model key proxy", () => {
  // The proxy forwarded any method and path with the operator's key, so a member's turn (or any
  // command of it, which holds the placeholder) could list and read what the operator's account
  // keeps: other tenants' message batches and their results, uploaded files, stored responses.
  it("forwards only model calls with the operator's key, not the account's other endpoints", async () => {
    const seen: string[] = [];
    const upstream = createServer((req, res) => {
      seen.push(`${req.method} ${req.url} ${req.headers["x-api-key"] ?? ""}`);
      res.writeHead(200, { "content-type": "application/json" });
      res.end("{}");
    });
    await new Promise<void>((resolve) => upstream.listen(0, "127.0.0.1", resolve));
    const address = upstream.address();
    const port = typeof address === "object" && address ? address.port : 0;
    // Claude Code's proxy, as a member's turn gets it on a runner with the operator's key.
    const turn = await keyProxyFor(
      "claude_code",
      { ANTHROPIC_API_KEY: "operator-key", ANTHROPIC_BASE_URL: `http://127.0.0.1:${port}` },
      {},
    );
    if (!turn) throw new Error("no key proxy for a member's Claude Code turn");
    const [proxy] = turn.proxies;
    try {
      const refused: number[] = [];
      for (const [method, path] of [
        ["GET", "/v1/messages/batches"],
        ["GET", "/v1/files"],
        ["DELETE", "/v1/files/file_1"],
        ["GET", "/v1/organizations/users"],
        ["POST", "/v1/messages/batches"],
      ] as const) {
        const answer = await fetch(`${proxy!.url}${path}`, {
          method,
          headers: { "x-api-key": proxy!.placeholder },
        });
        refused.push(answer.status);
      }
      expect(refused).toEqual([403, 403, 403, 403, 403]);
      expect(seen).toEqual([]);
      // The model call itself goes through, with the operator's key.
      const call = await fetch(`${proxy!.url}/v1/messages?beta=true`, {
        method: "POST",
        headers: { "x-api-key": proxy!.placeholder, "content-type": "application/json" },
        body: "{}",
      });
      expect(call.status).toBe(200);
      expect(seen).toEqual(["POST /v1/messages?beta=true operator-key"]);
    } finally {
      await Promise.all(turn.proxies.map((started) => started.close()));
      upstream.close();
    }
  });
});
