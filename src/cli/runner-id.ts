import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "../core/config.js";
import { newId } from "../core/ids.js";

/**
 * The runner's id: as configured, else the one this home gave it before (`<home>/runner-id`),
 * else a new one kept there. A runner that restarts comes back under its id, so the work pinned
 * to it (a follow-up's session and workspace) and its leftovers find it again. `runyard up`'s
 * local runner (`local`) keeps its own, `<host>-local-<6>` in `<home>/local-runner-id`: two `up`s
 * of other homes on one machine never share an id. A home an earlier version ran keeps that one's
 * `<host>-local`, which its bots wait for.
 */
export function runnerIdFor(config: Config, home: string, local = false): string {
  if (config.runnerId) return config.runnerId;
  const file = join(home, local ? "local-runner-id" : "runner-id");
  try {
    const kept = readFileSync(file, "utf8").trim();
    if (kept) return kept;
  } catch {}
  const earlier = `${config.hostname}-local`;
  const id =
    local && existsSync(join(home, "runners", encodeURIComponent(earlier)))
      ? earlier
      : `${config.hostname}-${local ? "local-" : ""}${newId("r").slice(-6)}`;
  mkdirSync(home, { recursive: true, mode: 0o700 });
  writeFileSync(file, `${id}\n`, { mode: 0o600 });
  return id;
}
