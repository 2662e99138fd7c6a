import { type Kysely, type Migration, Migrator } from "kysely";
import { RunyardError } from "../../core/errors.js";
import type { Logger } from "../../core/logger.js";
import { connectionLost } from "../connection-loss.js";
import * as initial from "./0001_initial.js";
import * as runnerOwner from "./0002_runner_owner.js";
import * as replicas from "./0003_replicas.js";
import * as identity from "./0004_identity.js";
import * as secrets from "./0005_secrets.js";
import * as audit from "./0006_audit.js";
import * as artifacts from "./0007_artifacts.js";
import * as bots from "./0008_bots.js";
import * as botRuns from "./0009_bot_runs.js";
import * as runnerPlacement from "./0010_runner_placement.js";
import * as jobRefusals from "./0011_job_refusals.js";
import * as runLogState from "./0012_run_log_state.js";
import * as dropJobReports from "./0013_drop_job_reports.js";
import * as savedWorkflows from "./0014_saved_workflows.js";
import * as concurrencyAndHooks from "./0015_concurrency_and_hooks.js";
import * as approvals from "./0016_approvals.js";
import * as runRollback from "./0017_run_rollback.js";
import * as forges from "./0018_forges.js";
import * as idempotencyKeys from "./0019_idempotency_keys.js";
import * as hookNamesPerTenant from "./0020_hook_names_per_tenant.js";
import * as versionPromotion from "./0030_version_promotion.js";
import * as agentBudgets from "./0031_agent_budgets.js";
import * as runRetries from "./0034_run_retries.js";
import * as workflowCalls from "./0035_workflow_calls.js";
import * as approvalRules from "./0036_approval_rules.js";
import * as botVersions from "./0037_bot_versions.js";
import * as botHistory from "./0038_bot_history.js";
import * as botTenantAlerts from "./0039_bot_tenant_alerts.js";
import * as spendReservations from "./0040_spend_reservations.js";
import * as runSubmitterUser from "./0041_run_submitter_user.js";
import * as revokedTokens from "./0042_revoked_tokens.js";
import * as budgetPlatformBound from "./0043_budget_platform_bound.js";
import * as spendHoldAfterSeq from "./0044_spend_hold_after_seq.js";
import * as schemaLevels from "./0045_schema_levels.js";

/**
 * A migration as runyard writes them (docs/upgrading.md): `up` runs as a replica starts and must
 * leave the release before it working, unless `breaksOlder` says it cannot (then it waits for no
 * older replica to be alive); what removes or tightens goes in `finish`, run once none is.
 */
export interface RunyardMigration extends Migration {
  breaksOlder?: boolean;
  finish?(db: Kysely<unknown>): Promise<void>;
}

/**
 * Every migration, by name. Names are numbered: Kysely applies them in name order, and a new
 * migration must sort after the last one. Never edit one that has shipped; add the next.
 */
export const migrations: Readonly<Record<string, RunyardMigration>> = {
  "0001_initial": initial,
  "0002_runner_owner": runnerOwner,
  "0003_replicas": replicas,
  "0004_identity": identity,
  "0005_secrets": secrets,
  "0006_audit": audit,
  "0007_artifacts": artifacts,
  "0008_bots": bots,
  "0009_bot_runs": botRuns,
  "0010_runner_placement": runnerPlacement,
  "0011_job_refusals": jobRefusals,
  "0012_run_log_state": runLogState,
  "0013_drop_job_reports": dropJobReports,
  "0014_saved_workflows": savedWorkflows,
  "0015_concurrency_and_hooks": concurrencyAndHooks,
  "0016_approvals": approvals,
  "0017_run_rollback": runRollback,
  "0018_forges": forges,
  "0019_idempotency_keys": idempotencyKeys,
  "0020_hook_names_per_tenant": hookNamesPerTenant,
  "0030_version_promotion": versionPromotion,
  "0031_agent_budgets": agentBudgets,
  "0034_run_retries": runRetries,
  "0035_workflow_calls": workflowCalls,
  "0036_approval_rules": approvalRules,
  "0037_bot_versions": botVersions,
  "0038_bot_history": botHistory,
  "0039_bot_tenant_alerts": botTenantAlerts,
  "0040_spend_reservations": spendReservations,
  "0041_run_submitter_user": runSubmitterUser,
  "0042_revoked_tokens": revokedTokens,
  "0043_budget_platform_bound": budgetPlatformBound,
  "0044_spend_hold_after_seq": spendHoldAfterSeq,
  "0045_schema_levels": schemaLevels,
};

/** Kysely's bookkeeping tables: which migrations ran, and the lock their runner holds. */
export const migrationTableName = "runyard_migration";
export const migrationLockTableName = "runyard_migration_lock";
/** runyard's own (0045): who may write the database, and which migrations' `finish` ran. */
export const migrationStateTableName = "runyard_migration_state";
export const migrationFinishedTableName = "runyard_migration_finished";

/**
 * Applies the migrations not applied yet; throws when the database is newer than this runyard.
 * On PostgreSQL the migrator holds `pg_advisory_lock` while it runs, so servers starting
 * together on one empty database apply each migration once.
 */
export async function migrateToLatest(db: Kysely<unknown>, logger?: Logger): Promise<void> {
  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => migrations },
    migrationTableName,
    migrationLockTableName,
  });
  const { error, results } = await migrator.migrateToLatest();
  for (const result of results ?? []) {
    if (result.status === "Success") logger?.info({ migration: result.migrationName }, "store migrated");
  }
  if (error !== undefined) {
    const message = error instanceof Error ? error.message : String(error);
    const newer = /previously executed migration (\S+) is missing/.exec(message);
    if (newer) {
      throw new RunyardError(
        "STORE_TOO_NEW",
        `the database was migrated by a newer runyard (migration ${newer[1]}); upgrade runyard to open it`,
        { cause: error },
      );
    }
    if (lostDatabase(error)) {
      // On PostgreSQL every pending migration runs in one transaction (the migrator's lock is
      // taken in it too), so a database that went away took all of it back: the caller may wait
      // for the database and run this again, as a replica does at start.
      throw new RunyardError(
        "STORE_UNAVAILABLE",
        `the database went away while runyard migrated it (${message}); nothing of the migration was kept`,
        { cause: error },
      );
    }
    throw new Error(`store migration failed: ${message}`, { cause: error });
  }
}

/** The migration failed because its connection to the database was lost, not because of itself. */
function lostDatabase(error: unknown): boolean {
  if (error instanceof RunyardError) return error.code === "STORE_UNAVAILABLE";
  return connectionLost(error);
}
