import { afterEach } from "vitest";
import { tempDir } from "./cli.js";
import { type Proc, startRunner, startTestServer, type TestServer } from "./server.js";

/**
 * Server replicas sharing one PostgreSQL database, and runners joined to them, each killed -9
 * after every test of the file that made the fleet. Replicas heartbeat every 300 ms and presume
 * one another dead after `leaseMs` of silence: short enough that a test sees adoption quickly,
 * and a longer one keeps a replica slowed by a loaded machine from being presumed dead while it lives.
 */
export interface ReplicaFleet {
  /**
   * A replica on `databaseUrl` (on `port` when given: a replica started again where it was), with
   * `env` added to its environment.
   */
  replica(databaseUrl: string, port?: number, env?: Record<string, string>): Promise<TestServer>;
  /** A runner joined to `urls` (comma-separated replica URLs). */
  runner(urls: string, token: string, id: string, capacity?: number): Promise<Proc>;
  /** Anything else the test starts, killed with the fleet. */
  track(proc: Proc): Proc;
}

export function replicaFleet(options: { secretKey: string; leaseMs?: number }): ReplicaFleet {
  const started: Proc[] = [];
  afterEach(async () => {
    await Promise.all(started.splice(0).map((proc) => proc.kill("SIGKILL")));
  });
  const env = {
    RUNYARD_SECRET_KEY: options.secretKey,
    RUNYARD_REPLICA_HEARTBEAT_MS: "300",
    RUNYARD_REPLICA_LEASE_MS: String(options.leaseMs ?? 2000),
  };
  const track = (proc: Proc): Proc => {
    started.push(proc);
    return proc;
  };
  return {
    async replica(databaseUrl, port, more = {}) {
      const server = await startTestServer(
        tempDir(),
        { RUNYARD_DATABASE_URL: databaseUrl, ...env, ...more },
        port,
      );
      track(server.proc);
      return server;
    },
    async runner(urls, token, id, capacity = 4) {
      return track(await startRunner(urls, token, { id, capacity }));
    },
    track,
  };
}
