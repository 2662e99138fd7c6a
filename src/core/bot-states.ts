/**
 * A bot's lifecycle states (the avtomatika-bot states, plus `removed`). In core because both the
 * store (which keeps them) and the bots module (which moves them) need them, and the store imports
 * only core.
 */
export const botStates = [
  "building",
  "pulling",
  "starting",
  "running",
  "unhealthy",
  "stopped",
  "crashed",
  "timeout",
  "removed",
] as const;

export type BotState = (typeof botStates)[number];

/**
 * The states that hold a slot of the per-user quota: the bot is being made or is up. `starting`
 * is a container up whose health check has not passed yet; `unhealthy` one whose check fails.
 */
export const liveBotStates = [
  "building",
  "pulling",
  "starting",
  "running",
  "unhealthy",
] as const satisfies readonly BotState[];

/** The states in which a bot's container is up (its health aside). */
export const upBotStates = ["starting", "running", "unhealthy"] as const satisfies readonly BotState[];

/** How a bot's container is made: a runtime with the user's files, a Dockerfile, or an image. */
export const botModes = ["simple", "custom", "image"] as const;

export type BotMode = (typeof botModes)[number];
