import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { KubeCluster } from "./cluster.js";
import { watchUntil } from "./watch-until.js";

/**
 * An API server that answers the runner's connect, holds the list the test asks for until the
 * test lets it go, and keeps each watch open (as a real one does while the pod runs).
 */
async function apiServer(): Promise<{
  url: string;
  server: Server;
  listAsked: Promise<() => void>;
  watches: number;
}> {
  let askedList: (release: () => void) => void = () => undefined;
  const listAsked = new Promise<() => void>((resolve) => {
    askedList = resolve;
  });
  const state = { watches: 0 };
  const emptyList = JSON.stringify({
    kind: "PodList",
    apiVersion: "v1",
    metadata: { resourceVersion: "7" },
    items: [],
  });
  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    const url = new URL(request.url ?? "/", "http://x");
    if (url.searchParams.get("watch") === "true") {
      state.watches++;
      response.writeHead(200, { "content-type": "application/json" });
      response.flushHeaders();
      return;
    }
    const answer = () => {
      response.writeHead(200, { "content-type": "application/json" });
      response.end(emptyList);
    };
    if (url.searchParams.get("labelSelector") === "runyard.dev/job=held") askedList(answer);
    else answer();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    listAsked,
    get watches() {
      return state.watches;
    },
  };
}

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

describe("watchUntil", () => {
  it("rejects at once when aborted while its list is on its way, opening no watch", async () => {
    const api = await apiServer();
    const home = mkdtempSync(join(tmpdir(), "runyard-watch-until-"));
    cleanups.push(() => {
      api.server.closeAllConnections();
      api.server.close();
      rmSync(home, { recursive: true, force: true });
    });
    const kubeconfig = join(home, "config");
    writeFileSync(
      kubeconfig,
      JSON.stringify({
        apiVersion: "v1",
        kind: "Config",
        clusters: [{ name: "c", cluster: { server: api.url, "insecure-skip-tls-verify": true } }],
        users: [{ name: "u", user: { token: "t" } }],
        contexts: [{ name: "x", context: { cluster: "c", user: "u", namespace: "steps" } }],
        "current-context": "x",
      }),
    );
    const cluster = await KubeCluster.connect({ KUBECONFIG: kubeconfig, HOME: home }, {});
    const stop = new AbortController();
    const watched = watchUntil(cluster, "pods", "runyard.dev/job=held", () => undefined, stop.signal);
    const release = await api.listAsked;
    stop.abort(new Error("canceled"));
    release();
    await expect(watched).rejects.toThrow("canceled");
    expect(api.watches).toBe(0);
  });
});
