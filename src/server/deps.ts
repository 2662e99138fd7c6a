import { z } from "zod";
import type { AgentStatus } from "../agents/availability.js";
import type { RunyardError } from "../core/errors.js";
import type { Logger } from "../core/logger.js";
import { BotCall, type BotReply } from "../core/protocol.js";
import type { LinkWire, RunnerLink } from "../core/runner-link.js";
import type { Store, TokenRecord } from "../store/index.js";
import type { WorkflowLimits } from "../workflow/yaml-limits.js";
import type { ApprovalWaits } from "./approvals/approval-waits.js";
import type { BotRuns } from "./bots/bot-runs.js";
import type { HookRate } from "./bots/hook-limiter.js";
import type { EventBus } from "./event-bus.js";
import type { IdempotencySettings } from "./idempotency.js";
import type { LoginLimiter } from "./identity/login-limiter.js";
import type { Revocations } from "./identity/revocations.js";
import type { Quotas } from "./quotas.js";
import type { RunService } from "./runs/run-service.js";
import type { SavedWorkflows } from "./runs/saved-workflows.js";
import type { WorkflowParser } from "./runs/workflow-parser.js";
import type { Scheduler } from "./schedules/scheduler.js";
import type { SessionTokens } from "./session-tokens.js";
import type { SpendBudgets } from "./spend-budgets.js";
import type { RunTracing } from "./tracing/tracing.js";

/** How big artifacts may be (`RUNYARD_MAX_ARTIFACT_BYTES`, `RUNYARD_MAX_RUN_ARTIFACT_BYTES`). */
export interface ArtifactLimits {
  /** One upload's body, in bytes. */
  maxArtifactBytes: number;
  /** All the artifacts of one run together, in bytes. */
  maxRunArtifactBytes: number;
}

/** This replica's runner sockets (runner-hub.ts), declared below the hub so ServerDeps stands below it. */
export interface RunnerSockets {
  /** Takes a runner's socket, its token checked; `wire`, the TCP socket under it. */
  accept(socket: RunnerLink, token: TokenRecord, wire?: LinkWire): void;
  /** Ends the sockets a revoked token holds; answers the runner ids whose sockets it ended. */
  revokeToken(tokenId: string): Promise<string[]>;
  /** The tokens of the sockets open here. */
  connectedTokens(): string[];
  /** How many runners are connected here. */
  readonly connectedRunners: number;
}

/** What one replica sends another: the call the bot's runner is to make, and for whom. */
export const RelayedCall = z.object({
  runner_id: z.string().min(1),
  bot_id: z.string().min(1),
  call: BotCall,
  timeout_ms: z.number().int().min(1).max(120_000),
});
export type RelayedCall = z.infer<typeof RelayedCall>;

/** Calls a bot through its runner on whichever replica holds the runner's socket (fleet/bot-relay.ts). */
export interface BotRelayCalls {
  call(runnerId: string, botId: string, call: BotCall, timeoutMs: number): Promise<BotReply | undefined>;
  /** Checks a relayed call's signature (another replica's, with the fleet's key). */
  verify(signature: string | undefined, body: string): Promise<"bad" | "ok">;
  /** Makes a relayed call through a socket of this replica's; undefined where none holds it. */
  callHere(relayed: RelayedCall): Promise<BotReply> | undefined;
}

/** What the routes need, built once in `startServer`. */
export interface ServerDeps {
  /** The whole store: the routes use nearly every repo; a module they build takes only those it uses. */
  store: Store;
  bus: EventBus;
  /** Runs' traces over OTLP (docs/observability.md); absent: tracing is off. */
  tracing?: RunTracing;
  runs: RunService;
  /** Where approval steps wait; an answer stored through the API wakes its wait, on any replica. */
  approvals: Pick<ApprovalWaits, "answered">;
  /** Named, versioned workflows per tenant, and the runs started from them. */
  savedWorkflows: SavedWorkflows;
  /** Fires schedules' ticks on the leader; a save wakes it, `/metrics` counts its ticks. */
  scheduler: Pick<Scheduler, "wake" | "ticks">;
  hub: RunnerSockets;
  botRelay: BotRelayCalls;
  /** This server among the replicas sharing its database (`/health` says which answered). */
  replica: { id: string; isLeader: boolean };
  /** Signs and checks session and stream JWTs. */
  sessions: SessionTokens;
  /** Ends what a revoked credential holds open (runner sockets, event streams), on every replica. */
  revocations: Revocations;
  /** Failed logins per username and address, in this replica's memory. */
  loginLimiter: LoginLimiter;
  /** How long creating requests' `Idempotency-Key`s and their answers are kept. */
  idempotency: IdempotencySettings;
  /** Run limits per tenant and user (QUOTA_EXCEEDED), counted from the store. */
  quotas: Quotas;
  /** Agents' spend budgets per tenant and user, counted from the store. */
  budgets: SpendBudgets;
  /** Exact origins whose browser scripts may call the API (CORS); empty: none. */
  corsOrigins: readonly string[];
  /** Agents on this server's machine (`GET /health/agents`); never a credential. */
  agentsHealth: () => Promise<AgentStatus[]>;
  /** How large a submitted or validated workflow may be, and how many aliases it may use. */
  workflowLimits: WorkflowLimits;
  /** Parses a submitted or validated workflow off the event loop (in `runyard server` and `up`). */
  parseWorkflow: WorkflowParser;
  artifactLimits: ArtifactLimits;
  /** The largest custom-mode archive a bot start may upload (RUNYARD_MAX_BOT_UPLOAD_BYTES). */
  botUploadBytes: number;
  /** How many webhook requests a bot takes (`POST /api/bots/ID/hook/...`), counted across replicas. */
  botHookRate: HookRate;
  /** The bot run kind: a bot's start and the next version an update makes; absent where bots are not run. */
  bots?: BotRuns;
  /** Bots' alerts and history upkeep (`notify_hosts:` applies to their notify URLs). */
  botWatch?: { refusalOf(url: string): RunyardError | undefined };
  logger: Logger;
  version: string;
  /** What the server waits for to work (`runyard up`: its local runner); `/health` answers 503 till then. */
  waitingFor?: () => string | undefined;
  /** Set once a newer runyard made the database unwritable for this replica (fleet/schema-watch.ts). */
  storeTooNew?: () => RunyardError | undefined;
}
