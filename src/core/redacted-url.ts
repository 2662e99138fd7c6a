/**
 * A URL as logs and messages say it: the password in it (`postgres://user:secret@...`,
 * `https://user:key@collector`) masked; `unparsable` when it is not a URL.
 */
export function redactedUrl(url: string, unparsable: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.toString();
  } catch {
    return unparsable;
  }
}
