import type { AddressInfo } from "node:net";
import { withoutCredentials } from "../core/config-env.js";
import { createLogger } from "../core/logger.js";
import { createDirectServer } from "../direct/server.js";
import type { CliContext } from "./context.js";

export interface AgentServerFlags {
  /** `:7072`, `7072`, `127.0.0.1:7072`, `0.0.0.0:7072`, `[::1]:7072`. */
  addr: string;
  token?: string;
}

/** Where to listen; `hostGiven` is false for `:7072` and `7072`, which bind 127.0.0.1. */
export interface ListenAddress {
  host: string;
  port: number;
  hostGiven: boolean;
}

/**
 * `runyard agent-server --addr :7072 --token T`: runs the steps of workflow hosts that name this
 * machine by `address` (the agent-server API's agent mode) until SIGINT or SIGTERM, which cancel
 * the running steps. Exit 0 after a clean stop, 1 when it cannot listen, 2 on bad flags.
 */
export async function agentServerCommand(flags: AgentServerFlags, ctx: CliContext): Promise<number> {
  const listen = parseListenAddress(flags.addr);
  if (listen === undefined) {
    ctx.stderr.write(`error: --addr ${JSON.stringify(flags.addr)} is not an address to listen on\n`);
    ctx.stderr.write("hint: write --addr :7072, 127.0.0.1:7072 or 0.0.0.0:7072\n");
    return 2;
  }
  const token = flags.token ?? ctx.config.token;
  if (token === undefined || token === "") {
    ctx.stderr.write("error: agent-server needs a token, so that only your workflows can run steps here\n");
    ctx.stderr.write(
      "hint: start it with --token T (or set RUNYARD_TOKEN=T), and give the workflow's host the same `token: T`\n",
    );
    return 2;
  }

  const logger = createLogger({ level: ctx.config.logLevel, name: "agent-server", daemon: true });
  const app = createDirectServer({
    token,
    baseEnv: withoutCredentials(ctx.env),
    killGraceMs: ctx.config.killGraceMs,
    logger,
  });
  try {
    await app.listen({ host: listen.host, port: listen.port });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    ctx.stderr.write(`error: cannot listen on ${flags.addr}: ${code ?? (error as Error).message}\n`);
    if (code === "EADDRINUSE")
      ctx.stderr.write("hint: another process uses that port; pick another --addr\n");
    await app.close();
    return 1;
  }

  let stopRequested!: () => void;
  const stopping = new Promise<void>((resolve) => {
    stopRequested = resolve;
  });
  const stopListening = ctx.onInterrupt(() => stopRequested());
  try {
    const { port } = app.server.address() as AddressInfo;
    const shown = listen.host.includes(":") ? `[${listen.host}]` : listen.host;
    ctx.stdout.write(`agent-server listening on http://${shown}:${port}\n`);
    if (!listen.hostGiven) {
      ctx.stdout.write(
        `--addr ${flags.addr} binds 127.0.0.1, so only this machine can reach it; use --addr 0.0.0.0:${port} to accept workflows from other machines\n`,
      );
    } else if (listen.host === "0.0.0.0" || listen.host === "::") {
      ctx.stderr.write(
        "warning: any machine that reaches this port and knows the token can run commands here; the token travels in clear over plain HTTP, so use it on a trusted network\n",
      );
    }
    await stopping;
    ctx.stderr.write("agent-server stopping: canceling running steps\n");
    await app.close();
    ctx.stderr.write("agent-server stopped\n");
    return 0;
  } finally {
    stopListening();
  }
}

/** Reads `--addr`; undefined when it is not `[host:]port`. */
export function parseListenAddress(addr: string): ListenAddress | undefined {
  const match = /^(?:(\[[0-9a-fA-F:.]+\]|[^:[\]\s]*):)?(\d{1,5})$/.exec(addr.trim());
  if (!match) return undefined;
  const port = Number(match[2]);
  if (port > 65535) return undefined;
  const host = (match[1] ?? "").replace(/^\[|\]$/g, "");
  return host === "" ? { host: "127.0.0.1", port, hostGiven: false } : { host, port, hostGiven: true };
}
