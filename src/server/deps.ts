import type { Logger } from "../core/logger.js";
import type { Store } from "../store/types.js";
import type { EventBus } from "./event-bus.js";
import type { RunManager } from "./run-manager.js";
import type { RunnerHub } from "./runner-hub.js";

/** What the routes need, built once in `startServer`. */
export interface ServerDeps {
  store: Store;
  bus: EventBus;
  runs: RunManager;
  hub: RunnerHub;
  logger: Logger;
  version: string;
}
