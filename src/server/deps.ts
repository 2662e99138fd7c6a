import type { Logger } from "../core/logger.js";
import type { Store } from "../store/types.js";
import type { EventBus } from "./event-bus.js";
import type { RunnerHub } from "./runner-hub.js";
import type { RunService } from "./runs/run-service.js";

/** What the routes need, built once in `startServer`. */
export interface ServerDeps {
  store: Store;
  bus: EventBus;
  runs: RunService;
  hub: RunnerHub;
  /** This server among the replicas sharing its database (`/health` says which answered). */
  replica: { id: string; isLeader: boolean };
  logger: Logger;
  version: string;
}
