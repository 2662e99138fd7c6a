import { type Kysely, sql } from "kysely";
import { RunyardError } from "../core/errors.js";
import type { ErrorInfo, RunEvent, RunStatus, UnnumberedEvent } from "../core/events.js";
import type { Logger } from "../core/logger.js";
import { appendRunEvents } from "./append-run-events.js";
import * as artifacts from "./artifacts.js";
import * as audit from "./audit.js";
import * as bots from "./bots.js";
import { aesGcmColumns, type ColumnCipher, isSealed, plainColumns } from "./column-cipher.js";
import type { StoreContext, StoreDialect } from "./dialect.js";
import * as fleet from "./fleet.js";
import * as jobReports from "./job-reports.js";
import * as jobs from "./jobs.js";
import { migrateToLatest } from "./migrations/index.js";
import * as runEvents from "./run-events.js";
import * as runners from "./runners.js";
import * as runs from "./runs.js";
import type { Database } from "./schema.js";
import * as secrets from "./secrets.js";
import * as tokens from "./tokens.js";
import type {
  ActiveRunsQuery,
  AppendEventsOptions,
  AppendRunEventsOptions,
  BotPatch,
  BotQuota,
  ClaimingRunner,
  IfBotState,
  IfStatus,
  JobRefusal,
  JobReportKind,
  ListAuditQuery,
  ListBotsQuery,
  ListEventsQuery,
  ListJobsQuery,
  ListRunsQuery,
  ListTokensQuery,
  NewArtifact,
  NewAuditEvent,
  NewBot,
  NewJob,
  NewJobReport,
  NewRun,
  NewSecret,
  NewToken,
  NewUser,
  ReplicaInput,
  RunnerInput,
  RunnerStatus,
  RunPatch,
  Store,
  TokenKind,
} from "./types.js";
import * as users from "./users.js";

/** Options every backend passes through to the shared implementation. */
export interface KyselyStoreOptions {
  logger?: Logger;
  /** The store's clock (timestamps it sets, lease ends); tests replace it. Default: the wall clock. */
  now?: () => Date;
  /**
   * Encrypts job payloads and results, run specs and vars at rest (AES-256-GCM keyed by this
   * text's SHA-256). Without it they are stored as they are (the in-memory store).
   */
  secretKey?: string;
}

/**
 * The store over any Kysely instance: migrates it to the latest schema, then serves `Store`.
 * The Kysely instance belongs to the store from here on; `close()` destroys it.
 */
export async function createKyselyStore(
  db: Kysely<Database>,
  dialect: StoreDialect,
  opts: KyselyStoreOptions = {},
): Promise<Store> {
  const cipher = opts.secretKey === undefined ? plainColumns : aesGcmColumns(opts.secretKey);
  try {
    await migrateToLatest(db as Kysely<unknown>, opts.logger);
    await checkSecretKey(db, cipher);
  } catch (error) {
    await db.destroy();
    throw error;
  }
  return new KyselyStore({ db, dialect, now: opts.now ?? (() => new Date()), cipher });
}

/**
 * Sealed columns a key check samples, first hit wins. `server_keys` is sealed by the first
 * server on the database: a replica started with another key is refused before it claims a job
 * whose payload it could not read.
 */
const sealedColumns: ReadonlyArray<readonly [table: string, column: string]> = [
  ["runs", "spec"],
  ["secrets", "value"],
  ["server_keys", "value"],
  ["artifacts", "content"],
  ["bots", "spec"],
];

/** Refuses at once a key that cannot read what is stored, instead of failing on some later read. */
async function checkSecretKey(db: Kysely<Database>, cipher: ColumnCipher): Promise<void> {
  let sealed: string | undefined;
  for (const [table, column] of sealedColumns) {
    const row = await sql<{
      value: string;
    }>`select ${sql.ref(column)} as value from ${sql.table(table)} where ${sql.ref(column)} like 'enc1:%' limit 1`.execute(
      db,
    );
    sealed = row.rows[0]?.value;
    if (sealed !== undefined) break;
  }
  if (sealed === undefined || !isSealed(sealed)) return;
  if (cipher === plainColumns) {
    throw new RunyardError(
      "SECRET_KEY_MISMATCH",
      "the database holds encrypted data and no secret key was given",
    );
  }
  cipher.open(sealed);
}

class KyselyStore implements Store {
  private closed = false;

  constructor(private readonly ctx: StoreContext) {}

  createRun(input: NewRun) {
    return runs.createRun(this.ctx, input);
  }
  updateRun(id: string, patch: RunPatch, opts?: IfStatus<RunStatus>) {
    return runs.updateRun(this.ctx, id, patch, opts);
  }
  getRun(id: string) {
    return runs.getRun(this.ctx, id);
  }
  listRuns(query?: ListRunsQuery) {
    return runs.listRuns(this.ctx, query);
  }
  listRunsByStatus(statuses: readonly RunStatus[]) {
    return runs.listRunsByStatus(this.ctx, statuses);
  }
  markInterruptedRunning(reason: ErrorInfo, opts?: { ids?: readonly string[] }) {
    return runs.markInterruptedRunning(this.ctx, reason, opts);
  }
  countRuns() {
    return runs.countRuns(this.ctx);
  }

  appendEvents(events: readonly RunEvent[], opts?: AppendEventsOptions) {
    return runEvents.appendEvents(this.ctx, events, opts);
  }
  appendRunEvents(runId: string, events: readonly UnnumberedEvent[], opts?: AppendRunEventsOptions) {
    return appendRunEvents(this.ctx, runId, events, opts);
  }
  listEvents(runId: string, query?: ListEventsQuery) {
    return runEvents.listEvents(this.ctx, runId, query);
  }

  dropOldestOutput(runId: string, bytes: number) {
    return runEvents.dropOldestOutput(this.ctx, runId, bytes);
  }
  lastSeq(runId: string) {
    return runEvents.lastSeq(this.ctx, runId);
  }

  createJob(input: NewJob) {
    return jobs.createJob(this.ctx, input);
  }
  getJob(id: string) {
    return jobs.getJob(this.ctx, id);
  }
  claimJob(runner: ClaimingRunner, leaseMs: number) {
    return jobs.claimJob(this.ctx, runner, leaseMs);
  }
  refuseJob(id: string, runnerId: string, refusals: readonly JobRefusal[], notBefore: Date) {
    return jobs.refuseJob(this.ctx, id, runnerId, refusals, notBefore);
  }
  acceptJob(id: string, runnerId: string) {
    return jobs.acceptJob(this.ctx, id, runnerId);
  }
  completeJob(id: string, runnerId: string, result: unknown) {
    return jobs.completeJob(this.ctx, id, runnerId, result);
  }
  returnJob(id: string, runnerId: string) {
    return jobs.returnJob(this.ctx, id, runnerId);
  }
  loseJob(id: string) {
    return jobs.loseJob(this.ctx, id);
  }
  giveUpJob(id: string, runnerId: string, result: unknown) {
    return jobs.giveUpJob(this.ctx, id, runnerId, result);
  }
  cancelQueuedJob(id: string, result: unknown) {
    return jobs.cancelQueuedJob(this.ctx, id, result);
  }
  cancelJob(id: string, result: unknown) {
    return jobs.cancelJob(this.ctx, id, result);
  }
  renewLeases(runnerId: string, leaseMs: number, jobIds?: readonly string[]) {
    return jobs.renewLeases(this.ctx, runnerId, leaseMs, jobIds);
  }
  holdLeases(runIds: readonly string[], until: Date) {
    return jobs.holdLeases(this.ctx, runIds, until);
  }
  listJobs(query?: ListJobsQuery) {
    return jobs.listJobs(this.ctx, query);
  }
  jobQueue() {
    return jobs.jobQueue(this.ctx);
  }
  expiredJobs(now?: string) {
    return jobs.expiredJobs(this.ctx, now);
  }

  upsertRunner(input: RunnerInput) {
    return runners.upsertRunner(this.ctx, input);
  }
  setRunnerStatus(id: string, status: RunnerStatus, at: string, opts?: { replicaId?: string }) {
    return runners.setRunnerStatus(this.ctx, id, status, at, opts);
  }
  touchRunner(id: string, at: string) {
    return runners.touchRunner(this.ctx, id, at);
  }
  listRunners(query?: { tenantId?: string | null; status?: RunnerStatus }) {
    return runners.listRunners(this.ctx, query);
  }
  getRunner(id: string) {
    return runners.getRunner(this.ctx, id);
  }

  putArtifact(input: NewArtifact) {
    return artifacts.putArtifact(this.ctx, input);
  }
  listArtifacts(runId: string) {
    return artifacts.listArtifacts(this.ctx, runId);
  }
  getArtifact(runId: string, name: string) {
    return artifacts.getArtifact(this.ctx, runId, name);
  }

  createToken(input: NewToken) {
    return tokens.createToken(this.ctx, input);
  }
  findToken(secret: string) {
    return tokens.findToken(this.ctx, secret);
  }
  getToken(id: string) {
    return tokens.getToken(this.ctx, id);
  }
  listTokens(query?: TokenKind | ListTokensQuery) {
    return tokens.listTokens(this.ctx, query);
  }
  revokeToken(id: string) {
    return tokens.revokeToken(this.ctx, id);
  }
  countTokens(kind?: TokenKind) {
    return tokens.countTokens(this.ctx, kind);
  }

  setSecret(input: NewSecret) {
    return secrets.setSecret(this.ctx, input);
  }
  listSecrets(tenantId: string | null) {
    return secrets.listSecrets(this.ctx, tenantId);
  }
  secretValues(tenantId: string | null, names: readonly string[]) {
    return secrets.secretValues(this.ctx, tenantId, names);
  }
  removeSecret(tenantId: string | null, name: string) {
    return secrets.removeSecret(this.ctx, tenantId, name);
  }
  createUser(input: NewUser) {
    return users.createUser(this.ctx, input);
  }
  getUser(id: string) {
    return users.getUser(this.ctx, id);
  }
  findUserByName(username: string) {
    return users.findUserByName(this.ctx, username);
  }
  listUsers(query?: { tenantId?: string | null }) {
    return users.listUsers(this.ctx, query);
  }
  setUserPassword(id: string, passwordHash: string) {
    return users.setUserPassword(this.ctx, id, passwordHash);
  }
  removeUser(id: string) {
    return users.removeUser(this.ctx, id);
  }
  revokeSession(sessionId: string, userId: string, expiresAt: string) {
    return users.revokeSession(this.ctx, sessionId, userId, expiresAt);
  }
  sessionRevoked(sessionId: string) {
    return users.sessionRevoked(this.ctx, sessionId);
  }
  serverKey(name: string) {
    return users.serverKey(this.ctx, name);
  }

  heartbeatReplica(input: ReplicaInput, opts?: { ifPresent?: boolean }) {
    return fleet.heartbeatReplica(this.ctx, input, opts);
  }
  listReplicas() {
    return fleet.listReplicas(this.ctx);
  }
  removeReplicas(opts: { seenBefore?: string; seenAt?: string; except?: string; only?: string }) {
    return fleet.removeReplicas(this.ctx, opts);
  }
  adoptRuns(replicaId: string, opts?: { own?: boolean }) {
    return fleet.adoptRuns(this.ctx, replicaId, opts);
  }
  runReplica(runId: string) {
    return fleet.runReplica(this.ctx, runId);
  }
  requestRunCancel(runId: string) {
    return fleet.requestRunCancel(this.ctx, runId);
  }
  cancelRequested(runId: string) {
    return fleet.cancelRequested(this.ctx, runId);
  }
  cancelRequestedRuns(replicaId: string) {
    return fleet.cancelRequestedRuns(this.ctx, replicaId);
  }

  addJobReport(input: NewJobReport) {
    return jobReports.addJobReport(this.ctx, input);
  }
  listJobReports(query: { jobIds?: readonly string[]; replicaId?: string; limit?: number }) {
    return jobReports.listJobReports(this.ctx, query);
  }
  jobsWithReports(jobIds: readonly string[], kind?: JobReportKind) {
    return jobReports.jobsWithReports(this.ctx, jobIds, kind);
  }
  deleteJobReports(ids: readonly number[]) {
    return jobReports.deleteJobReports(this.ctx, ids);
  }
  pruneJobReports() {
    return jobReports.pruneJobReports(this.ctx);
  }

  countActiveRuns(query?: ActiveRunsQuery) {
    return runs.countActiveRuns(this.ctx, query);
  }
  appendAudit(input: NewAuditEvent) {
    return audit.appendAudit(this.ctx, input);
  }
  tallyAudit(id: string, input: NewAuditEvent) {
    return audit.tallyAudit(this.ctx, id, input);
  }
  pruneAudit(before: string) {
    return audit.pruneAudit(this.ctx, before);
  }
  listAudit(query?: ListAuditQuery) {
    return audit.listAudit(this.ctx, query);
  }

  createBot(input: NewBot, quota?: BotQuota) {
    return bots.createBot(this.ctx, input, quota);
  }
  getBot(id: string) {
    return bots.getBot(this.ctx, id);
  }
  findBot(tenantId: string | null, owner: string, name: string) {
    return bots.findBot(this.ctx, tenantId, owner, name);
  }
  listBots(query?: ListBotsQuery) {
    return bots.listBots(this.ctx, query);
  }
  updateBot(id: string, patch: BotPatch, opts?: IfBotState) {
    return bots.updateBot(this.ctx, id, patch, opts);
  }
  countLiveBots(tenantId: string | null, owner: string) {
    return bots.countLiveBots(this.ctx, tenantId, owner);
  }
  expiredBots(now?: string) {
    return bots.expiredBots(this.ctx, now);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.ctx.db.destroy();
  }
}
