import { randomInt } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";

/**
 * The first port the kernel hands out to connections that name none (`ip_local_port_range`):
 * every outgoing connection of the machine takes one of those, thousands a minute while the
 * suite runs (PostgreSQL's clients, HTTP, WebSockets).
 */
function firstEphemeralPort(): number {
  try {
    const [low] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/);
    const port = Number(low);
    return Number.isInteger(port) && port > 12_000 ? port : 32_768;
  } catch {
    return 32_768;
  }
}

/** Whether something may listen on `port` of 127.0.0.1 now. */
function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

/**
 * A port of 127.0.0.1 that nothing listens on, for a process the test starts next. It is picked at
 * random below the kernel's range for outgoing connections: a port the kernel handed out (listen
 * on 0, then close) could be taken by any outgoing connection before the process bound it (run Q4:
 * a server started 1 s later found its port in use).
 */
export async function freePort(): Promise<number> {
  const below = firstEphemeralPort();
  for (let tries = 0; tries < 50; tries++) {
    const port = randomInt(10_000, below);
    if (await canListen(port)) return port;
  }
  throw new Error(`no free port between 10000 and ${below} on 127.0.0.1 after 50 tries`);
}
