/**
 * The request an `Idempotency-Key` stands for, as a hash: method, URL and the body as parsed JSON.
 * Pure, so that the JSON thread (json-body-thread.ts) can hash a large body beside parsing it:
 * sorting and re-serialising a 7.9 MB body on the event loop held every other request 0.26 s on a
 * quiet machine, 1.6 s on a busy one.
 */
import { createHash } from "node:crypto";

/** JSON with object keys sorted, so two bodies that parse the same hash the same. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, child]) => child !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, child]) => `${JSON.stringify(key)}:${canonicalJson(child)}`).join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

/** What a request is, for its key: `method` and `url` as Fastify has them, `body` as parsed. */
export interface HashedRequest {
  method: string;
  url: string;
}

export function requestHash(request: HashedRequest, body: unknown): string {
  return createHash("sha256")
    .update(`${request.method} ${request.url}\n${canonicalJson(body)}`)
    .digest("hex");
}
