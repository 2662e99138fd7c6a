import WebSocket from "ws";
import { RunyardError } from "../core/errors.js";
import type { Logger } from "../core/logger.js";
import { runnerSocketPath } from "../core/protocol.js";
import type { RunnerLink } from "../core/runner-link.js";
import type { RunnerDaemonOptions } from "./runner-options.js";

/**
 * With several servers, how long an opening handshake may take before the runner tries the next:
 * a server behind a dropped route would otherwise hold it for the kernel's connect timeout (about
 * two minutes). A single server keeps the old behaviour, as there is nowhere else to go.
 */
const failoverHandshakeTimeoutMs = 10_000;

/** Where a runner's link goes: a WebSocket to `url`, or (`local`) a server in this process. */
export interface LinkTarget {
  url: string;
  token: string;
  /** There are other servers to try: a handshake is given `failoverHandshakeTimeoutMs`. */
  failover: boolean;
  logger: Logger;
  local?: RunnerDaemonOptions["link"];
}

/** How one attempt to link went, told to the runner daemon. */
export interface LinkEvents {
  /** The link exists (not yet open): its messages and its close are the daemon's from now on. */
  linked(socket: RunnerLink): void;
  /** It is open: the hello goes next. */
  opened(): void;
  /** The server is up without its database, or a newer runyard's migration left it behind. */
  away(retryAfterMs: number, code: string | undefined): void;
  /** The server refused the token (401 or 403), said in `message`. */
  refused(message: string): void;
  /** No link was made (a local one only: a socket's end is its close). */
  failed(): void;
}

/**
 * One attempt to link a runner to its server: over a WebSocket, or to a server in this process
 * (`runyard up`'s), its token checked as the socket's upgrade checks it and refused or put off
 * the same ways.
 */
export function openServerLink(target: LinkTarget, on: LinkEvents): void {
  if (target.local) {
    linkLocally(target, target.local, on);
    return;
  }
  const url = new URL(runnerSocketPath, target.url.replace(/^http/, "ws"));
  const socket = new WebSocket(url, {
    headers: { authorization: `Bearer ${target.token}` },
    ...(maskAddsNothing(url) ? { generateMask: zeroMask } : {}),
    ...(target.failover ? { handshakeTimeout: failoverHandshakeTimeoutMs } : {}),
  });
  on.linked(socket);
  socket.on("open", () => on.opened());
  socket.on("unexpected-response", (_request, response) => {
    if (response.statusCode === 503) {
      // The body says which; the socket is ended once it is read (or could not be).
      const retryAfterMs = Number(response.headers["retry-after"] ?? 1) * 1000;
      void errorCodeOf(response).then((code) => {
        on.away(retryAfterMs, code);
        socket.terminate();
      });
      return;
    }
    const refused = response.statusCode === 401 || response.statusCode === 403;
    const message = refused
      ? `the server refused the runner token (HTTP ${response.statusCode})`
      : `the server answered HTTP ${response.statusCode} to the runner connection`;
    target.logger.error({ status: response.statusCode }, message);
    if (refused) on.refused(message);
    socket.terminate();
  });
  socket.on("error", (error) =>
    target.logger.debug({ err: error.message, server: target.url }, "runner socket error"),
  );
}

/**
 * A client masks its frames (RFC 6455, 5.3) so that bytes a page's script chose cannot pose as
 * HTTP to a proxy that reads the connection in clear. No proxy reads a `wss:` link or one to this
 * machine's loopback: there the mask is all zeros, which `ws` on both ends takes as no mask, and
 * a step's output is not XORed twice (about 0.7 s of CPU over 100 MB of output, runner and
 * server together). Any other link keeps a random mask for each frame.
 */
export function maskAddsNothing(url: URL): boolean {
  return (
    url.protocol === "wss:" || loopbackHosts.has(url.hostname) || /^127\.\d+\.\d+\.\d+$/.test(url.hostname)
  );
}

const loopbackHosts = new Set(["localhost", "[::1]", "::1"]);

function zeroMask(mask: Buffer): void {
  mask.fill(0);
}

function linkLocally(target: LinkTarget, local: NonNullable<LinkTarget["local"]>, on: LinkEvents): void {
  local(target.token).then(
    (socket) => {
      on.linked(socket);
      on.opened();
    },
    (error: unknown) => {
      const code = error instanceof RunyardError ? error.code : undefined;
      if (error instanceof RunyardError && (code === "UNAUTHORIZED" || code === "FORBIDDEN")) {
        const message = `the server refused the runner token (HTTP ${error.status}: ${error.message})`;
        target.logger.error({ code }, message);
        on.refused(message);
      } else if (code === "STORE_TOO_NEW" || code === "STORE_UNAVAILABLE") {
        on.away(1000, code);
      } else {
        target.logger.error({ err: error }, "the server could not take the runner");
      }
      on.failed();
    },
  );
}

/** The error code of a refused upgrade's JSON body (its first 8 KiB), if it has one. */
async function errorCodeOf(response: NodeJS.ReadableStream): Promise<string | undefined> {
  let body = "";
  const deadline = setTimeout(() => (response as { destroy?: () => void }).destroy?.(), 2000);
  try {
    for await (const chunk of response) {
      body += String(chunk);
      if (body.length > 8192) break;
    }
    const code = (JSON.parse(body) as { error?: { code?: unknown } }).error?.code;
    return typeof code === "string" ? code : undefined;
  } catch {
    return undefined;
  } finally {
    clearTimeout(deadline);
  }
}
