import type { FastifyReply, FastifyRequest } from "fastify";
import { RunyardError } from "../../core/errors.js";
import type { Logger } from "../../core/logger.js";
import { runnerSocketPath } from "../../core/protocol.js";
import { type SchemaState, schemaLevel } from "../../store/schema-upgrade.js";
import type { SchemaRepo } from "../../store/types.js";

/** `Retry-After` of a write refused because the database is too new: a rollout's pace, not a blip. */
export const storeTooNewRetryAfterSeconds = 30;

/**
 * A replica's watch on the database's schema while it runs (docs/upgrading.md). A newer runyard
 * that migrated the database past what this one may write (its writers level above this one's
 * schema level) makes this replica stop writing: once, for good, until it is upgraded. It is read at
 * each heartbeat; a replica that meets the newer schema answers writes 503 STORE_TOO_NEW, turns
 * `/health/ready` off and stops its work (its runs go to the replicas that may write), while reads
 * go on.
 */
export class SchemaWatch {
  private timer: NodeJS.Timeout | undefined;
  private checking: Promise<void> | undefined;
  private refused: RunyardError | undefined;

  constructor(
    private readonly schema: Pick<SchemaRepo, "state" | "refuseWrites">,
    private readonly everyMs: number,
    private readonly logger: Logger,
    /** Called once, when the database turns out too new: stop every writing part. */
    private readonly onTooNew: (refusal: RunyardError) => void,
  ) {}

  /** The refusal writes get, once the database is too new for this replica. */
  get refusal(): RunyardError | undefined {
    return this.refused;
  }

  start(): void {
    if (this.timer || this.refused) return;
    this.timer = setInterval(() => {
      this.checking ??= this.check().finally(() => {
        this.checking = undefined;
      });
    }, this.everyMs);
    this.timer.unref();
  }

  /** Reads the writers level once; a database unreachable now is the heartbeat's to report. */
  async check(): Promise<void> {
    if (this.refused) return;
    let state: SchemaState | undefined;
    try {
      state = await this.schema.state();
    } catch {
      return;
    }
    if (!state || state.writersFrom <= schemaLevel || this.refused) return;
    this.refused = new RunyardError(
      "STORE_TOO_NEW",
      `a newer runyard migrated the database while this replica ran: it is written by ${state.writersVersion} or later, and this replica (schema level ${schemaLevel}) no longer writes; it still answers reads`,
      { details: { writers_from: state.writersFrom, schema_level: schemaLevel } },
    );
    this.logger.error(
      { writersFrom: state.writersFrom, needs: state.writersVersion, schemaLevel },
      `the database was migrated for ${state.writersVersion} or later: this replica stops writing (writes answer 503 STORE_TOO_NEW, /health/ready says not ready); upgrade it`,
    );
    this.schema.refuseWrites();
    this.stop();
    this.onTooNew(this.refused);
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}

/** Methods that only read; everything else is a write. */
const readMethods: ReadonlySet<string> = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * Refuses writes (and new runner sockets, which write a run's every event) once the watch has
 * found the database too new; reads pass.
 */
export function storeTooNewHook(refusal: () => RunyardError | undefined) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const refused = refusal();
    if (!refused) return;
    // The route fastify matched, however the URL was spelled.
    if (readMethods.has(request.method) && request.routeOptions.url !== runnerSocketPath) return;
    reply.header("retry-after", String(storeTooNewRetryAfterSeconds));
    await reply.code(refused.status).send({ error: refused.toInfo() });
  };
}
