import type { Logger } from "../../core/logger.js";
import type { Store } from "../../store/index.js";

/**
 * The leader's round for migrations' contract parts (docs/upgrading.md): once no replica older
 * than a migration has a row (they stopped, or went silent for a lease and the leader removed
 * them), its `finish` runs, here, once for the fleet.
 */
export async function finishMigrations(store: Pick<Store, "schema">, logger: Logger): Promise<void> {
  const finished = await store.schema.finish();
  if (finished.length > 0)
    logger.info({ migrations: finished }, "no older replica is left: the migrations' finishing steps ran");
}
