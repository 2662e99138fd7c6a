import { RunyardError } from "./errors.js";

/** What `runyard` talks to when no server is named. */
export const defaultServerUrl = "http://127.0.0.1:8088";

/**
 * The servers named by `--server`, RUNYARD_SERVER_URL, ADOS_API_URL or the config file's
 * `server_url`: one URL, or the URLs of several replicas of one control plane, comma-separated.
 * Spaces around an item and empty items are ignored; the order is kept, since the first URL is
 * tried first. An item that is not an http(s) URL is a USAGE error naming it.
 */
export function parseServerUrls(list: string): string[] {
  const urls = list
    .split(",")
    .map((item) => item.trim())
    .filter(Boolean);
  for (const url of urls) {
    if (!/^https?:\/\//i.test(url) || !URL.canParse(url)) {
      throw new RunyardError("USAGE", `"${url}" is not a server URL`, { hint: serverUrlHint(url) });
    }
  }
  return urls;
}

function serverUrlHint(item: string): string {
  const list = "(--server / RUNYARD_SERVER_URL; several servers: http://a:8088,http://b:8088)";
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(item)) return `A server URL starts with http:// or https:// ${list}`;
  return `Did you mean http://${item.replace(/^\/+/, "")}? ${list}`;
}
