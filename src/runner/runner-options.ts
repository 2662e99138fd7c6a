import type { JobKind } from "../core/jobs/index.js";
import type { Logger } from "../core/logger.js";
import type { BotCall, BotReply, BotStats, RunnerInfo } from "../core/protocol.js";
import type { RunnerLink } from "../core/runner-link.js";
import type { JobHandlers } from "./handlers/types.js";
import type { JobJournal } from "./job-journal.js";

/** What a runner daemon is made with: its servers, its handlers, its spool, and what it is told. */
export interface RunnerDaemonOptions {
  /**
   * The server, or several replicas of one control plane. The runner connects to the first; when
   * a connection fails or drops it goes on to the next at once, and waits out the backoff only
   * after every URL of a round has failed.
   */
  serverUrls: string[];
  token: string;
  /**
   * A server in this process (`runyard up`'s): the runner links to it with this instead of a
   * WebSocket to `serverUrls`, which its jobs still use for HTTP (artifacts). It rejects as the
   * socket's upgrade refuses: UNAUTHORIZED or FORBIDDEN for a token, STORE_TOO_NEW or
   * STORE_UNAVAILABLE to try again later.
   */
  link?: (token: string) => Promise<RunnerLink>;
  /** What the runner says of itself at hello; the job kinds it handles follow from `handlers`. */
  info: Omit<RunnerInfo, "kinds">;
  /** One handler per job kind: what this runner does with the jobs it is assigned. */
  handlers: JobHandlers;
  /**
   * Why this runner lacks the handler of a kind (`bot`: "no Docker engine reachable at ..."),
   * said in the refusal of a job of that kind should one reach it anyway.
   */
  missing?: Partial<Record<JobKind, string>>;
  logger: Logger;
  /** How long a job's accept waits for its first report to carry it (see `JobOutbox.accept`); absent: 0. */
  acceptGraceMs?: number;
  /** The longest a dropped job's processes hold its slot after the drop (`WorkSlots`); absent: 15 s. */
  droppedSlotMs?: number;
  /** First reconnect delay; doubles up to `maxBackoffMs`. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** Records the jobs held, so the next life of this runner reports those that died with it. */
  journal?: JobJournal;
  /**
   * Where a job's events wait on disk once its events in memory reach `memoryBytes` (default
   * 32 MiB) while the server cannot take them, up to `maxBytes` of output a job (default 1 GiB),
   * `totalBytes` of all jobs together (default 10 GiB), and never leaving the disk less than
   * `minFreeBytes` free (default 1 GiB). Without it, output past the memory is dropped (and the
   * drop said in a notice), as is output past these caps.
   */
  spool?: {
    dir: string;
    memoryBytes?: number;
    maxBytes?: number;
    totalBytes?: number;
    minFreeBytes?: number;
  };
  /** Called on every welcome, the first and each after a reconnect, with the server's URL. */
  onConnected?: (serverUrl: string) => void;
  /**
   * Called on every welcome with the install the server names (undefined from an older server),
   * before any later message of the server is handled: the runner labels, adopts and removes
   * containers of that install only.
   */
  onWelcome?: (installId: string | undefined) => Promise<void>;
  /**
   * What keeps runs' folders and sandboxes on this runner (RunFolders): the runs it keeps are named
   * at each hello, and it is told each run's end (`run_ended`) and whether the server says them.
   */
  runs?: {
    kept(): string[];
    serverTellsEnds(yes: boolean): void;
    ended(runId: string): void;
  };
  /** Bot containers found on this runner's Docker at start, and how to remove one the server disowns. */
  bots?: {
    found: string[];
    /** The install label of each found bot's container, by bot id (none on older containers). */
    installs?: Record<string, string>;
    remove(botId: string): Promise<void>;
    /** New samples of the held bots' use since the last call, sent with the next heartbeat. */
    stats?(): BotStats[];
    /** Answers the server's `bot_call`: a webhook forwarded to a held bot, or a bot's kept log. */
    call?(botId: string, call: BotCall, sendPart: (bodyBase64: string) => Promise<void>): Promise<BotReply>;
  };
}
