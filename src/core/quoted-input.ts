/**
 * How an error quotes what a user sent: whole when it is short, else its start and its length.
 * An error never echoes a 600 KB name back (nor makes a client print it): what was sent is known
 * to the sender, and a prefix is enough to say which field it was.
 */
export const quotedPrefixLength = 60;

/** `"Europe/Berln"`, or `"AAAAAAAA…" (600000 characters)` for a long one. */
export function quoted(value: string, max = quotedPrefixLength): string {
  if (value.length <= max) return JSON.stringify(value);
  return `${JSON.stringify(`${value.slice(0, max)}…`)} (${value.length} characters)`;
}
