import { z } from "zod";

/**
 * What started a run: `manual` a person (the CLI, the web UI), `api` a program calling the API,
 * `schedule` a saved workflow's schedule, `webhook` a signed webhook, `rerun` the re-run of
 * another run, `forge` a code forge's event, `call` a `workflow.call` step of another run.
 */
export const runTriggers = ["manual", "api", "schedule", "webhook", "rerun", "forge", "call"] as const;
export const RunTrigger = z.enum(runTriggers);
export type RunTrigger = z.infer<typeof RunTrigger>;

/**
 * The header a client sends to say a person submitted the run (`manual`); the CLI and the web UI
 * send it. A request without it is a program's (`api`). Clients may claim no other trigger.
 */
export const triggerHeader = "x-runyard-trigger";
