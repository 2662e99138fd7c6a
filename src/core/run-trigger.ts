import { z } from "zod";
import { runTriggers } from "./run-states.js";

export { runTriggers };
export const RunTrigger = z.enum(runTriggers);
export type RunTrigger = z.infer<typeof RunTrigger>;

/**
 * The header a client sends to say a person submitted the run (`manual`); the CLI and the web UI
 * send it. A request without it is a program's (`api`). Clients may claim no other trigger.
 */
export const triggerHeader = "x-runyard-trigger";
