import type { EventOf } from "../../core/events.js";
import type { BotPatch } from "../../store/index.js";

const finalStates: ReadonlySet<string> = new Set(["stopped", "crashed", "timeout", "removed"]);

/** What a `bot.state` event changes on the bot's record; never more than the event says. */
export function botPatchOf(event: EventOf<"bot.state">): BotPatch {
  const patch: BotPatch = { state: event.state };
  if (event.health) patch.health = event.health;
  if (event.state === "running" || event.state === "starting") {
    patch.finished_at = null;
    patch.error = null;
    if (event.container_id) patch.container_id = event.container_id;
  }
  if (event.restarts !== undefined) patch.restarts = event.restarts;
  if (event.exit_code !== undefined) patch.exit_code = event.exit_code;
  if (event.oom_killed !== undefined) patch.oom_killed = event.oom_killed;
  if (event.error) patch.error = event.error;
  if (event.last_logs) patch.last_logs = event.last_logs.join("\n");
  if (event.image) patch.image = event.image;
  if (finalStates.has(event.state)) {
    patch.finished_at = event.ts;
    patch.container_id = null;
    patch.memory_bytes = null;
    patch.cpu_percent = null;
    patch.health = null;
  }
  return patch;
}
