import { createHash } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkArchive, defaultArchiveLimits, listArchive } from "../../bots/archive.js";
import { checkSimpleSource } from "../../bots/simple-build.js";
import { type BotState, liveBotStates } from "../../core/bot-states.js";
import { errorInfo, RunyardError } from "../../core/errors.js";
import type { ErrorInfo, RunStatus } from "../../core/events.js";
import type { BotJob, BotJobResult, BotSource, BotTask } from "../../core/jobs/bot.js";
import { isSecretName } from "../../core/masking.js";
import type { BotRecord, RunRecord, Store } from "../../store/index.js";
import type { JobQueue } from "../job-queue.js";
import type { BotDefaults, BotStarter } from "../quotas.js";
import type { ActiveRun, PreparedRun, RunKindModule } from "../runs/run-kind.js";
import type { RunOrigin, RunOwner } from "../runs/run-origin.js";
import type { RunService } from "../runs/run-service.js";
import { resolveStoredSecrets, secretsMissing } from "../runs/stored-secrets.js";
import { botExtras } from "./bot-extras.js";
import { BotRunSpec, type StartBotBody, type UpdateBotBody } from "./bot-spec.js";

/** How long past a bot's expiry the server waits for its runner to end it before ending it itself. */
const serverExpiryGraceMs = 60_000;

/** The job id of a bot run's n-th job (a new one each time its runner was lost). */
export function botJobId(runId: string, attempt: number): string {
  return `${botJobPrefix(runId)}${attempt}`;
}

/** What every job id of a bot run starts with. */
export function botJobPrefix(runId: string): string {
  return `job_${runId}_bot_`;
}

/**
 * Bot runs on the server: a bot's life is one run of kind `bot` whose `bot` job lasts as long as
 * the bot runs, on a runner with Docker. Its runner lost (restarted, or gone quiet), the bot
 * waits for that same runner, which adopts the container still running there; any other runner
 * would start it twice. Stopping the bot is canceling the run.
 */
export class BotRuns implements RunKindModule {
  constructor(
    private readonly store: Pick<Store, "bots" | "jobs" | "runners" | "secrets">,
    private readonly queue: JobQueue,
    private readonly defaults: BotDefaults,
  ) {}

  /**
   * Stores a bot (its quota checked in the same transaction) and queues the run of its life
   * through `runs`; answers both. A run that cannot be queued leaves no bot behind.
   */
  async submit(
    runs: Pick<RunService, "submit">,
    body: StartBotBody,
    starter: BotStarter,
    owner: RunOwner,
    origin: RunOrigin,
  ): Promise<{ run: RunRecord; bot: BotRecord }> {
    const { prepared, bot } = await this.prepare(body, starter);
    try {
      const run = await runs.submit("bot", prepared, owner, origin);
      const linked = await this.store.bots.update(bot.id, { run_id: run.id });
      return { run, bot: linked ?? bot };
    } catch (error) {
      await this.store.bots.update(bot.id, { state: "removed" }).catch(() => undefined);
      throw error;
    }
  }

  /**
   * Checks a bot start and stores the bot (quota checked in the same transaction, so a refused
   * start builds nothing); a stopped bot of the same name is replaced.
   */
  async prepare(body: StartBotBody, starter: BotStarter): Promise<{ prepared: PreparedRun; bot: BotRecord }> {
    const source = await this.sourceOf(body);
    const { missing } = await resolveStoredSecrets(this.store.secrets, starter.tenantId, body.secrets);
    if (missing.length > 0) throw secretsMissing(missing, starter.tenantId);
    await this.needDockerRunner(starter.tenantId, body.group);
    const lifetimeSecs = Math.min(
      body.lifetime_secs ?? this.defaults.lifetimeSecs,
      this.defaults.lifetimeSecs,
    );
    if (body.lifetime_secs !== undefined && body.lifetime_secs > this.defaults.lifetimeSecs) {
      throw new RunyardError(
        "INVALID_INPUT",
        `lifetime_secs ${body.lifetime_secs} is past this server's bot lifetime of ${this.defaults.lifetimeSecs} s`,
        { hint: "Ask for less, or have an admin raise RUNYARD_BOT_LIFETIME_SECS." },
      );
    }
    const existing = await this.store.bots.find(starter.tenantId, starter.owner, body.name);
    if (existing && (liveBotStates as readonly BotState[]).includes(existing.state)) {
      throw new RunyardError("CONFLICT", `bot ${body.name} is ${existing.state}`, {
        hint: `Stop it first (\`runyard bot stop ${body.name}\`), or start this one under another name.`,
      });
    }
    if (existing)
      await this.store.bots.update(existing.id, { state: "removed" }, { ifState: [existing.state] });
    const expiresAt = new Date(Date.now() + lifetimeSecs * 1000).toISOString();
    const restart = { policy: body.restart, max_restarts: body.max_restarts, backoff_ms: 1000 };
    const bot = await this.store.bots.create(
      {
        tenant_id: starter.tenantId,
        owner: starter.owner,
        name: body.name,
        mode: source.mode,
        spec: {
          source: redacted(source),
          env_names: Object.keys(body.env),
          secrets: body.secrets,
          restart,
          limits: { memory_bytes: starter.limits.memoryMb * 1024 * 1024, cpus: starter.limits.cpus },
          ...(body.health ? { health: body.health } : {}),
          ...botExtras(body),
        },
        state: source.mode === "image" ? "pulling" : "building",
        image: source.mode === "image" ? source.image : null,
        restart_policy: body.restart === "on-failure" ? `on-failure:${body.max_restarts}` : body.restart,
        expires_at: expiresAt,
      },
      { maxLive: starter.maxBots, setting: starter.quotaSetting },
    );
    const spec: BotRunSpec = {
      bot_id: bot.id,
      name: body.name,
      owner: starter.owner,
      source,
      env: body.env,
      secrets: body.secrets,
      limits: {
        memory_bytes: starter.limits.memoryMb * 1024 * 1024,
        cpus: starter.limits.cpus,
        pids: starter.limits.pids,
      },
      network: this.defaults.network,
      restart,
      expires_at: expiresAt,
      ...(body.group ? { group: body.group } : {}),
      labels: body.labels,
      secret_env: checkedSecretEnv(body.secret_env, body.env),
      ...(body.health ? { health: body.health } : {}),
      version: 1,
      ...(body.log_max_mb !== undefined ? { log_max_bytes: body.log_max_mb * 1024 * 1024 } : {}),
    };
    return { prepared: { name: `bot ${body.name}`, spec, vars: {} }, bot };
  }

  /**
   * The spec of a bot's next version: what `body` gives (a new source, checked as a start's is;
   * env, secrets, health, restart), the rest as the running version `current` has it. The
   * lifetime, limits, network and placement stay: an update does not extend a bot's life.
   */
  async nextVersion(
    current: BotRunSpec,
    body: UpdateBotBody,
    version: number,
    tenantId: string | null,
  ): Promise<BotRunSpec> {
    const given = [body.files, body.code, body.archive, body.git, body.image].some((v) => v !== undefined);
    if (!given && (body.entrypoint !== undefined || body.requirements !== undefined || body.registry)) {
      throw new RunyardError("INVALID_INPUT", "entrypoint, requirements and registry go with a new source", {
        hint: "Give the new files, archive, git URL or image with them.",
      });
    }
    const source = given
      ? await this.sourceOf({ ...body, requirements: body.requirements ?? [] })
      : current.source;
    const secrets = body.secrets ?? current.secrets;
    const { missing } = await resolveStoredSecrets(this.store.secrets, tenantId, secrets);
    if (missing.length > 0) throw secretsMissing(missing, tenantId);
    const env = body.env ?? current.env;
    const restart =
      body.restart !== undefined || body.max_restarts !== undefined
        ? {
            ...current.restart,
            ...(body.restart !== undefined ? { policy: body.restart } : {}),
            ...(body.max_restarts !== undefined ? { max_restarts: body.max_restarts } : {}),
          }
        : current.restart;
    const health = body.health ?? current.health;
    const { health: _old, ...rest } = current;
    return {
      ...rest,
      source,
      env,
      secrets,
      restart,
      secret_env: checkedSecretEnv(body.secret_env ?? current.secret_env.filter((name) => name in env), env),
      ...(health ? { health } : {}),
      version,
    };
  }

  async start(run: ActiveRun): Promise<void> {
    const parsed = BotRunSpec.safeParse(run.record.spec);
    if (!parsed.success) throw new RunyardError("INVALID_INPUT", "the stored bot run spec is unreadable");
    const spec = parsed.data;
    const started = Date.now();
    const secrets = await resolveStoredSecrets(this.store.secrets, run.record.tenant_id, spec.secrets);
    if (secrets.missing.length > 0) {
      const error = secretsMissing(secrets.missing, run.record.tenant_id).toInfo();
      this.finish(run, spec, "crashed", "failed", error, started);
      return;
    }
    const env = { ...spec.env, ...secrets.values };
    const task: BotTask = {
      run_id: run.record.id,
      bot_id: spec.bot_id,
      name: spec.name,
      owner: spec.owner,
      tenant_id: run.record.tenant_id,
      source: spec.source,
      env,
      limits: spec.limits,
      network: spec.network,
      restart: spec.restart,
      expires_at: spec.expires_at,
      adopt: false,
      ...(spec.health ? { health: spec.health } : {}),
      version: spec.version,
      ...(spec.log_max_bytes !== undefined ? { log_max_bytes: spec.log_max_bytes } : {}),
      secrets: [
        ...Object.values(secrets.values),
        ...Object.entries(spec.env)
          .filter(([name]) => isSecretName(name) || spec.secret_env.includes(name))
          .map(([, value]) => value),
        ...(spec.source.mode === "image" && spec.source.registry_auth
          ? [spec.source.registry_auth.password]
          : []),
      ],
    };
    // Expiry while no runner holds the bot (its runner is away): the run ends `timeout` itself.
    // A runner that holds it ends it first, with its last logs (SIGTERM, 10 s, SIGKILL).
    const expiry = new AbortController();
    const expiryTimer = setTimeout(
      () => expiry.abort(),
      Math.max(0, Math.min(Date.parse(spec.expires_at) - Date.now() + serverExpiryGraceMs, 2 ** 31 - 1)),
    );
    // A bot may wait a day for its expiry: that must not keep a stopping server alive.
    expiryTimer.unref();
    const signal = AbortSignal.any([run.signal, expiry.signal]);
    try {
      // Jobs of an earlier life of this server go on where they are.
      let attempt = Math.max(1, (await this.store.jobs.list({ runId: run.record.id })).length);
      let pin: string | undefined;
      for (;;) {
        const id = botJobId(run.record.id, attempt);
        const job: BotJob = { job_id: id, kind: "bot", payload: { ...task, adopt: attempt > 1 } };
        const requirements = {
          ...(spec.group ? { group: spec.group } : {}),
          labels: ["docker", ...spec.labels, ...(pin ? [`runner:${pin}`] : [])],
        };
        const result = await this.queue.runJob(
          job,
          { runId: run.record.id, sink: run.sink, tenantId: run.record.tenant_id },
          { host: spec.name, requirements },
          signal,
        );
        if (result.kind !== "bot") throw new Error(`a bot job ended with a ${result.kind} result`);
        const lost = result.error?.code === "RUNNER_LOST" && !signal.aborted;
        if (lost) {
          const record = await this.store.jobs.get(id);
          pin = record?.runner_id ?? pin;
          attempt += 1;
          run.sink.emit({
            type: "notice",
            level: "warn",
            message: pin
              ? `runner ${pin} went away (${result.error?.message}); the bot waits for it to come back and adopt its container`
              : `the bot's job was lost (${result.error?.message}); it is queued again`,
          });
          continue;
        }
        if (expiry.signal.aborted && !run.signal.aborted) {
          this.finish(
            run,
            spec,
            "timeout",
            "timeout",
            errorInfo("TIMEOUT", "the bot's lifetime ended while no runner held it"),
            started,
            result,
          );
          return;
        }
        if (run.signal.aborted && result.error?.code === "RUNNER_LOST") {
          // Stopped while its runner was away: the user's stop is how it ended, not a crash. The
          // container, if it still runs there, goes when the runner is back (remove_bot at hello).
          this.finish(run, spec, "stopped", "canceled", undefined, started, { ...result, state: "stopped" });
          return;
        }
        const state: BotState = run.signal.aborted && result.state !== "crashed" ? "stopped" : result.state;
        this.finish(run, spec, state, statusOf(result, run.signal.aborted), result.error, started, result);
        return;
      }
    } finally {
      clearTimeout(expiryTimer);
    }
  }

  /** Says the bot's last state (the runner may not have: its job never ran, or was lost) and ends the run. */
  private finish(
    run: ActiveRun,
    spec: BotRunSpec,
    state: BotState,
    status: RunStatus,
    error: ErrorInfo | undefined,
    started: number,
    result?: BotJobResult,
  ): void {
    run.sink.emit({
      type: "bot.state",
      bot_id: spec.bot_id,
      state,
      ...(result
        ? { exit_code: result.exit_code, oom_killed: result.oom_killed, restarts: result.restarts }
        : {}),
      ...(error ? { error } : {}),
    });
    run.sink.emit({
      type: "run.finished",
      status,
      ...(error ? { error } : {}),
      duration_ms: Date.now() - started,
    });
  }

  /** The bot's source from the body; the mode from the one source given. Archives are checked here, before a runner gets them. */
  private async sourceOf(body: BotSourceFields): Promise<BotSource> {
    const given = [
      body.files || body.code !== undefined ? "simple" : undefined,
      body.archive !== undefined || body.git ? "custom" : undefined,
      body.image !== undefined ? "image" : undefined,
    ].filter((mode): mode is "simple" | "custom" | "image" => mode !== undefined);
    if (given.length !== 1) {
      throw new RunyardError(
        "INVALID_INPUT",
        given.length === 0
          ? "the bot has no source: give files (or code), an archive or git URL, or an image"
          : `the bot has more than one source (${given.join(" and ")}); give exactly one`,
        {
          hint: 'simple: {"files":{"bot.py":"..."}}; custom: {"archive":"<base64 tar/zip>"} or {"git":{"url":"https://..."}}; image: {"image":"ghcr.io/user/bot:v1"}.',
        },
      );
    }
    const mode = given[0]!;
    if (body.mode && body.mode !== mode) {
      throw new RunyardError("INVALID_INPUT", `mode ${body.mode} does not fit the ${mode} source given`, {
        hint: "Leave mode out: the source tells it.",
      });
    }
    if (body.registry && mode !== "image") {
      throw new RunyardError("INVALID_INPUT", "registry credentials go with an image only", {
        hint: "Give image with registry, or leave registry out.",
      });
    }
    if (mode === "simple") {
      if (body.files && body.code !== undefined) {
        throw new RunyardError("INVALID_INPUT", "give either files or code, not both", {
          hint: "code is one file's text; files maps several names to their texts.",
        });
      }
      const files = body.files ?? { [body.entrypoint ?? "bot.py"]: body.code ?? "" };
      const { entrypoint } = checkSimpleSource({
        files,
        requirements: body.requirements,
        ...(body.entrypoint ? { entrypoint: body.entrypoint } : {}),
      });
      return { mode, files, requirements: body.requirements, entrypoint };
    }
    if (mode === "custom") {
      if (body.archive !== undefined && body.git) {
        throw new RunyardError("INVALID_INPUT", "give either an archive or a git URL, not both");
      }
      if (body.archive !== undefined) {
        await this.checkUpload(body.archive);
        return { mode, archive: body.archive };
      }
      return { mode, git: { url: body.git!.url, ...(body.git!.ref ? { ref: body.git!.ref } : {}) } };
    }
    return {
      mode,
      image: body.image!,
      ...(body.registry
        ? {
            registry_auth: {
              username: body.registry.username,
              password: body.registry.password,
              ...(body.registry.server ? { serveraddress: body.registry.server } : {}),
            },
          }
        : {}),
    };
  }

  /** The upload listed and checked entry by entry, nothing extracted: one bad entry refuses it all. */
  private async checkUpload(archive: string): Promise<void> {
    const bytes = Buffer.from(archive, "base64");
    if (bytes.length > this.defaults.maxUploadBytes) {
      throw new RunyardError(
        "ARCHIVE_REJECTED",
        `the archive has ${bytes.length} bytes, more than this server takes (${this.defaults.maxUploadBytes})`,
        {
          hint: "Leave build outputs and dependencies out of it (a .dockerignore does not shrink the upload), or ask an admin to raise RUNYARD_MAX_BOT_UPLOAD_BYTES.",
        },
      );
    }
    const dir = await mkdtemp(join(tmpdir(), "runyard-upload-"));
    try {
      const path = join(dir, "upload");
      await writeFile(path, bytes, { mode: 0o600 });
      checkArchive(await listArchive(path), defaultArchiveLimits);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  /** A bot no runner could ever run would wait in the queue for good: refused at once instead. */
  private async needDockerRunner(tenantId: string | null, group: string | undefined): Promise<void> {
    const runners = await this.store.runners.list(tenantId === null ? {} : { tenantId });
    if (runners.some((runner) => runner.labels.includes("docker") && (!group || runner.group === group)))
      return;
    throw new RunyardError(
      "BOT_NO_RUNNER",
      `no runner${group ? ` in group ${group}` : ""} can run bots: none has Docker`,
    );
  }
}

/** What of a start's (or update's) body makes the bot's source. */
type BotSourceFields = Pick<
  StartBotBody,
  "mode" | "files" | "code" | "entrypoint" | "requirements" | "archive" | "git" | "image" | "registry"
>;

/** The names of env marked secret, each of which must be in env. */
function checkedSecretEnv(names: readonly string[], env: Record<string, string>): string[] {
  const unknown = names.filter((name) => !(name in env));
  if (unknown.length > 0) {
    throw new RunyardError(
      "INVALID_INPUT",
      `secret_env names ${unknown.join(", ")}, which env does not set`,
      { hint: "Each name marked secret needs its value in env." },
    );
  }
  return [...new Set(names)];
}

/** The run's status from how the bot's life ended. */
function statusOf(result: BotJobResult, stopped: boolean): RunStatus {
  if (result.state === "timeout") return "timeout";
  if (result.state === "crashed") return "failed";
  if (stopped || result.status === "canceled") return "canceled";
  return result.status === "failed" ? "failed" : "success";
}

/**
 * The source as kept on the bot record: no archive bytes, no registry password; a digest of the
 * code (files or archive) so that two versions built from different code tell apart, though
 * every build is tagged `:latest`.
 */
export function redacted(source: BotSource): Record<string, unknown> {
  switch (source.mode) {
    case "simple":
      return {
        mode: source.mode,
        files: Object.keys(source.files),
        entrypoint: source.entrypoint,
        requirements: source.requirements,
        code_digest: digest(
          JSON.stringify(Object.entries(source.files).sort(([a], [b]) => a.localeCompare(b))),
        ),
      };
    case "custom":
      return {
        mode: source.mode,
        ...(source.git
          ? { git: source.git }
          : { archive: true, ...(source.archive ? { code_digest: digest(source.archive) } : {}) }),
      };
    case "image":
      return {
        mode: source.mode,
        image: source.image,
        registry: source.registry_auth ? source.registry_auth.username : null,
      };
  }
}

/** A short sha256 of the code: enough to tell two versions apart, nothing of the code itself. */
function digest(text: string): string {
  return `sha256:${createHash("sha256").update(text).digest("hex").slice(0, 12)}`;
}
