import { createRequire } from "node:module";
import type pg from "pg";

const load = createRequire(import.meta.url);
let driver: typeof pg | undefined;

/**
 * node-postgres, loaded when a PostgreSQL store or fleet link first connects: a server on SQLite
 * (`runyard up`, every single-host install) never needs it, and loading it was 25 to 50 ms of
 * such a server's start.
 */
export function pgDriver(): typeof pg {
  driver ??= load("pg") as typeof pg;
  return driver;
}
