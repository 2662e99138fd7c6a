import type { FastifyInstance } from "fastify";
import { runnerSocketPath } from "../../core/protocol.js";
import { runnerTokenOf } from "../auth.js";
import type { ServerDeps } from "../deps.js";

/**
 * The runner socket (docs/architecture.md, "The life of a run"). Its runner token is checked before the upgrade, in the
 * route's preValidation hook, so a refused runner gets an ordinary 401 or 403 with the error
 * body; a checked socket goes to the hub, which starts its RunnerSession.
 */
export function runnerSocketRoute(app: FastifyInstance, deps: ServerDeps): void {
  app.get(
    runnerSocketPath,
    {
      websocket: true,
      preValidation: async (request) => {
        request.runnerToken = await runnerTokenOf(deps.store, request);
      },
    },
    (socket, request) => {
      const token = request.runnerToken;
      // preValidation set it or answered already: a socket without one is never served.
      if (!token) {
        socket.close(4001, "runner token required");
        return;
      }
      deps.hub.accept(socket, token, request.raw.socket);
    },
  );
}
