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

/** The range below the kernel's is cut in this many shares: one per worker (pool ids 1 to 8), and 0. */
const shares = 9;

/**
 * This process's share: its vitest worker's pool id (unique among the workers running at once),
 * 0 outside a worker (a global setup in vitest's main process).
 */
function share(): number {
  const id = Number(process.env.VITEST_POOL_ID);
  return Number.isInteger(id) && id >= 1 && id < shares ? id : 0;
}

/** Ports this process handed out: never handed out twice, though freed meanwhile. */
const handedOut = new Set<number>();

/**
 * A port of 127.0.0.1 that nothing listens on, for a process the test starts next. It is picked at
 * random below the kernel's range for outgoing connections: a port the kernel handed out (listen
 * on 0, then close) could be taken by any outgoing connection before the process bound it (run Q4:
 * a server started 1 s later found its port in use). Each worker picks from a share of its own, and
 * never the same port twice: a test that stops a server and starts it again on its port (a restart
 * after kill -9) finds the port as it left it, though other files picked ports meanwhile (s92b: a
 * `runyard up` restarted on its port 30 s after its kill found it taken, on a busy machine).
 */
export async function freePort(): Promise<number> {
  const below = firstEphemeralPort();
  const size = Math.floor((below - 10_000) / shares);
  const low = 10_000 + share() * size;
  for (let tries = 0; tries < 50; tries++) {
    const port = randomInt(low, low + size);
    if (handedOut.has(port)) continue;
    if (await canListen(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`no free port between ${low} and ${low + size} on 127.0.0.1 after 50 tries`);
}
