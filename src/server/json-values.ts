/**
 * How many values a parsed JSON text holds, counted as a member's text is read: the JSON thread
 * refuses a large body or message past 50,000 values, and a runner's message read on the event
 * loop is held to the same count before its schema walks it.
 */

/** Whether `value` holds more than `max` values (objects, arrays and what they hold); stops early. */
export function holdsMoreThan(value: unknown, max: number): boolean {
  let count = 0;
  const waiting: unknown[] = [value];
  while (waiting.length > 0) {
    const next = waiting.pop();
    count += 1;
    if (count > max) return true;
    if (next !== null && typeof next === "object")
      for (const inner of Array.isArray(next) ? next : Object.values(next)) waiting.push(inner);
  }
  return false;
}
