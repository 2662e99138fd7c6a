import { runEventTypes } from "../../src/core/event-types.js";
import type { RunEvent } from "../../src/core/events.js";

/**
 * A run event from the stream's `data:` line, or undefined for anything that is not one. The
 * stream sends the spine's events (src/core/events.ts); the browser checks the type and seq it
 * relies on, not every field: zod's validators would add about 27 KB gzipped to the pages.
 */
export function parseStreamEvent(data: string): RunEvent | undefined {
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    return undefined;
  }
  return isRunEvent(value) ? value : undefined;
}

function isRunEvent(value: unknown): value is RunEvent {
  return (
    typeof value === "object" &&
    value !== null &&
    "seq" in value &&
    typeof value.seq === "number" &&
    "type" in value &&
    runEventTypes.some((type) => type === value.type)
  );
}
