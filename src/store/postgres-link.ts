import type pg from "pg";
import type { Logger } from "../core/logger.js";
import type { FleetEnvelope, FleetLink } from "./fleet-link.js";
import { pgDriver } from "./pg-driver.js";

const channel = "runyard_fleet";
/** The advisory lock key the leader holds (the migrator's lock is a different key). */
const leaderLockKey = 0x72796c64; // "ryld"
const reconnectMs = 1000;
const sessionPrefix = "runyard-fleet:";

/**
 * The fleet link on PostgreSQL: one dedicated connection per replica that LISTENs on one
 * channel, sends with `pg_notify`, and holds the leader's session advisory lock. When the
 * connection drops, the replica stops leading at once (the lock went with the session) and
 * reconnects; when a leader's process dies, PostgreSQL frees its lock and another takes it.
 */
export function postgresLink(url: string, logger?: Logger, replicaId?: string): FleetLink {
  // The session says whose it is, so that a leader's session that outlived its replica (a host
  // gone without closing its connections) can be told apart and ended by the others.
  const applicationName = `${sessionPrefix}${replicaId ?? "unnamed"}`.slice(0, 63);
  const handlers = new Set<(message: FleetEnvelope) => void>();
  let client: pg.Client | undefined;
  let connecting: Promise<pg.Client | undefined> | undefined;
  let leading = false;
  let closed = false;
  /** The backend pid of this replica's fleet session. */
  let session: number | undefined;

  const connect = (): Promise<pg.Client | undefined> => {
    if (client) return Promise.resolve(client);
    if (closed) return Promise.resolve(undefined);
    connecting ??= (async () => {
      const next = new (pgDriver().Client)({
        connectionString: url,
        connectionTimeoutMillis: 5000,
        application_name: applicationName,
        keepAlive: true,
      });
      const lost = (error?: Error): void => {
        if (client !== next) return;
        client = undefined;
        if (leading) logger?.warn({ err: error }, "lost the fleet connection: no longer the leader");
        leading = false;
        next.end().catch(() => {});
      };
      next.on("error", lost);
      next.on("end", () => lost());
      next.on("notification", (notification) => {
        if (notification.channel !== channel || !notification.payload) return;
        let message: FleetEnvelope;
        try {
          message = JSON.parse(notification.payload) as FleetEnvelope;
        } catch {
          return;
        }
        // Any session that may connect can NOTIFY: only an object with a type is a message.
        if (typeof message !== "object" || message === null || typeof message.type !== "string") return;
        for (const handler of handlers) handler(message);
      });
      try {
        await next.connect();
        await next.query(`listen ${channel}`);
        const { rows } = await next.query<{ pid: number }>("select pg_backend_pid() as pid");
        session = rows[0]?.pid;
        client = next;
        return next;
      } catch (error) {
        logger?.warn({ err: error }, "cannot open the fleet connection; retrying");
        await next.end().catch(() => {});
        await new Promise((resolve) => setTimeout(resolve, reconnectMs).unref());
        return undefined;
      } finally {
        connecting = undefined;
      }
    })();
    return connecting;
  };

  // One query at a time on the fleet connection (node-postgres queues them, but deprecates
  // handing it a query while another runs).
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(query: () => Promise<T>): Promise<T> => {
    const next = queue.then(query, query);
    queue = next.catch(() => undefined);
    return next;
  };

  return {
    notify(message) {
      void connect().then((link) =>
        (link
          ? serial(() => link.query("select pg_notify($1, $2)", [channel, JSON.stringify(message)]))
          : Promise.resolve()
        ).catch((error: unknown) => logger?.debug({ err: error }, "a fleet message was not sent")),
      );
    },
    onMessage(handler) {
      handlers.add(handler);
      void connect();
      return () => handlers.delete(handler);
    },
    async lead() {
      const link = await connect();
      if (!link) return false;
      if (leading) return true;
      try {
        const { rows } = await serial(() =>
          link.query<{ locked: boolean }>("select pg_try_advisory_lock($1) as locked", [leaderLockKey]),
        );
        leading = client === link && rows[0]?.locked === true;
      } catch {
        leading = false;
      }
      return leading;
    },
    async leader() {
      const link = await connect();
      if (!link) return undefined;
      const { rows } = await serial(() =>
        link.query<{ pid: number; application_name: string | null }>(
          `select a.pid, a.application_name from pg_locks l join pg_stat_activity a on a.pid = l.pid
          where l.locktype = 'advisory' and l.granted and l.classid = 0 and l.objid = $1 and l.objsubid = 1
            and l.database = (select oid from pg_database where datname = current_database())`,
          [leaderLockKey],
        ),
      );
      const holder = rows[0];
      if (!holder || holder.pid === session) return undefined;
      const name = holder.application_name ?? "";
      return {
        replica: name.startsWith(sessionPrefix) ? name.slice(sessionPrefix.length) : name,
        session: holder.pid,
      };
    },
    async depose(pid) {
      const link = await connect();
      if (link) await serial(() => link.query("select pg_terminate_backend($1)", [pid]));
    },
    async close() {
      closed = true;
      handlers.clear();
      const link = client ?? (await connecting);
      client = undefined;
      leading = false;
      await link?.end().catch(() => {});
    },
  };
}
