/**
 * Ends a `switch` over a union: the compiler rejects the call when a member is not handled, so
 * a new event type or job kind cannot be forgotten by a consumer.
 */
export function assertExhaustive(value: never, what = "value"): never {
  throw new Error(`unhandled ${what}: ${JSON.stringify(value)}`);
}
