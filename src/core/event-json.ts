import type { RunEvent } from "./events.js";

/**
 * The JSON text of each event object serialized so far. A stored event is one object from the
 * store through the bus to every SSE client: its text is made once, when it is stored, and the
 * same string is sent to each client (a 64 KiB `step.output` costs a pass over its bytes per
 * serialization). Held weakly: the text lives as long as the event does.
 */
const serialized = new WeakMap<RunEvent, string>();

/** `JSON.stringify(event)`, made once per event object. Events are not changed once numbered. */
export function eventJson(event: RunEvent): string {
  let json = serialized.get(event);
  if (json === undefined) {
    json = JSON.stringify(event);
    serialized.set(event, json);
  }
  return json;
}
