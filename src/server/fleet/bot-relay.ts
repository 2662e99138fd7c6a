import { createHash, createHmac, randomBytes } from "node:crypto";
import type { Logger } from "../../core/logger.js";
import { type BotCall, BotReply } from "../../core/protocol.js";
import type { Store } from "../../store/index.js";
import { botRelayPath } from "../auth.js";
import type { BotRelayCalls, RelayedCall } from "../deps.js";
import { secretMatches } from "../hooks/hook-signature.js";
import type { RunnerHub } from "../runner-hub.js";

/** The header carrying `TIME.NONCE.HMAC` over the body, keyed with the fleet's shared server key. */
export const botRelayHeader = "x-runyard-replica-signature";
/** The server key (shared by the replicas of one database) that signs replica-to-replica calls. */
const relayKeyName = "replica-bot-calls";
/** How old a signed call may be when it arrives; its nonce is remembered this long. */
const freshMs = 30_000;
/** A forwarded webhook body is 1 MiB at most: as base64 in JSON, with room for headers. */
export const botRelayBodyLimit = 2 * 1024 * 1024;

/**
 * Calls a bot through its runner's socket: here through the hub, else over HTTP to the replica the
 * runner's row names, signed with a key only this database's replicas hold. The secret check and rate
 * limit stay on the first replica; the second only passes the call to its socket.
 */
export class BotRelay implements BotRelayCalls {
  private key: Promise<string> | undefined;
  /** Nonces of calls taken in the last `freshMs`: a replayed call is refused. */
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly replicaId: string,
    private readonly hub: Pick<RunnerHub, "callBot">,
    private readonly store: Pick<Store, "runners" | "fleet" | "serverKeys">,
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  private signingKey(): Promise<string> {
    this.key ??= this.store.serverKeys.get(relayKeyName).catch((error: unknown) => {
      this.key = undefined;
      throw error;
    });
    return this.key;
  }

  private async sign(body: string, time: number, nonce: string): Promise<string> {
    const digest = createHash("sha256").update(body).digest("hex");
    return createHmac("sha256", await this.signingKey())
      .update(`${time}.${nonce}.${digest}`)
      .digest("base64url");
  }

  /**
   * The bot's answer; undefined when no live replica holds its runner's socket, BOT_NOT_RUNNING naming
   * the replica when the one holding it cannot be reached.
   */
  async call(
    runnerId: string,
    botId: string,
    call: BotCall,
    timeoutMs: number,
  ): Promise<BotReply | undefined> {
    const here = this.hub.callBot(runnerId, botId, call, timeoutMs);
    if (here) return here;
    const runner = await this.store.runners.get(runnerId);
    if (runner?.status !== "online" || !runner.replica_id || runner.replica_id === this.replicaId)
      return undefined;
    const holder = (await this.store.fleet.listReplicas()).find((row) => row.id === runner.replica_id);
    if (!holder?.url) return undefined;
    const body = JSON.stringify({
      runner_id: runnerId,
      bot_id: botId,
      call,
      timeout_ms: timeoutMs,
    } satisfies RelayedCall);
    const time = this.now();
    const nonce = randomBytes(16).toString("base64url");
    const target = `${reachable(holder.url, holder.hostname)}${botRelayPath}`;
    try {
      const response = await fetch(target, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          [botRelayHeader]: `${time}.${nonce}.${await this.sign(body, time, nonce)}`,
        },
        body,
        signal: AbortSignal.timeout(timeoutMs + 5000),
      });
      const text = await response.text();
      if (response.status === 404) return undefined;
      if (!response.ok) throw new Error(`it answered ${response.status}: ${text.slice(0, 200)}`);
      return BotReply.parse(JSON.parse(text));
    } catch (error) {
      this.logger.warn({ err: error, replica: holder.id, runnerId }, "cannot pass a bot call to its replica");
      return {
        status: 502,
        headers: {},
        body_base64: "",
        error: {
          code: "BOT_NOT_RUNNING",
          message: `the server replica ${holder.id} holding runner ${runnerId} could not be reached at ${holder.url}: ${(error as Error).message}`,
        },
      };
    }
  }

  /**
   * Makes a call another replica signed (fresh, unseen, with the fleet's key) through the socket here;
   * undefined when the signature is wrong or the runner is not connected here.
   */
  async verify(signature: string | undefined, body: string): Promise<"bad" | "ok"> {
    const [timeText = "", nonce = "", mac = ""] = (signature ?? "").split(".");
    const time = Number(timeText);
    if (!Number.isSafeInteger(time) || nonce.length < 16 || mac === "") return "bad";
    if (Math.abs(this.now() - time) > freshMs) return "bad";
    if (!secretMatches(mac, await this.sign(body, time, nonce))) return "bad";
    const cutoff = this.now() - freshMs * 2;
    for (const [seenNonce, at] of this.seen) if (at < cutoff) this.seen.delete(seenNonce);
    if (this.seen.has(nonce)) return "bad";
    this.seen.set(nonce, this.now());
    return "ok";
  }

  /** The call made through this replica's own socket to the runner; undefined when not here. */
  callHere(relayed: RelayedCall): Promise<BotReply> | undefined {
    return this.hub.callBot(relayed.runner_id, relayed.bot_id, relayed.call, relayed.timeout_ms);
  }
}

/** A replica listening on every address records `0.0.0.0`: the others reach it by its host name. */
function reachable(url: string, hostname: string): string {
  const parsed = new URL(url);
  if (parsed.hostname === "0.0.0.0" || parsed.hostname === "[::]") parsed.hostname = hostname;
  return parsed.origin;
}
