import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { afterEach, beforeEach, describe, expect, it, onTestFinished } from "vitest";
import { storeBackends, type TestStore } from "../../../test/helpers/store-backends.js";
import { silentLogger } from "../../core/logger.js";
import type { Store } from "../../store/index.js";
import { notifyTimeoutMs } from "../notifier.js";
import { OutboundPolicy } from "../outbound/outbound-policy.js";
import { BotWatch } from "./bot-alerts.js";

/** A notify receiver on 127.0.0.1: answers at once, or never (`hang`). */
async function receiver(hang = false) {
  const notices: { bot: string; kind: string }[] = [];
  const open = new Set<ServerResponse>();
  let told: (() => void) | undefined;
  const first = new Promise<void>((resolve) => (told = resolve));
  const server: Server = createServer((request: IncomingMessage, response: ServerResponse) => {
    let body = "";
    request.on("data", (chunk: Buffer) => (body += chunk.toString()));
    request.on("end", () => {
      notices.push(JSON.parse(body) as { bot: string; kind: string });
      told?.();
      if (hang) {
        open.add(response);
        response.on("close", () => open.delete(response));
        return;
      }
      response.end("ok");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const url = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}/alerts`;
  return {
    url,
    notices,
    open,
    first,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

type Receiver = Awaited<ReturnType<typeof receiver>>;

setFlagsFromString("--expose-gc");
/** The garbage collector, run on purpose: a timeout held only weakly is lost to it. */
const collect = runInNewContext("gc") as () => void;

describe.each(storeBackends)("bot alerts watched by the leader on $name", (backend) => {
  let opened: TestStore;
  let store: Store;
  let clock: Date;
  let watch: BotWatch | undefined;
  const receivers: Receiver[] = [];

  beforeEach(async () => {
    clock = new Date();
    opened = await backend.open({ now: () => clock });
    store = opened.store;
  });

  afterEach(async () => {
    await watch?.stop();
    watch = undefined;
    for (const each of receivers.splice(0)) await each.close();
    await opened.dispose();
  });

  /** A watch as the server makes it (one POST's limit: the workflow notify timeout), or with `limitMs`. */
  const newWatch = (limitMs?: number) =>
    new BotWatch(store, new OutboundPolicy("notify_hosts", ["127.0.0.1"]), silentLogger, {
      isLeader: () => true,
      ...(limitMs === undefined ? {} : { notifyTimeoutMs: limitMs }),
    });

  const bot = async (
    name: string,
    tenant: string | null,
    state: "unhealthy" | "running",
    spec: Record<string, unknown> = {},
  ) => {
    clock = new Date(clock.getTime() + 1000);
    const created = await store.bots.create({
      tenant_id: tenant,
      owner: `owner-of-${name}`,
      name,
      mode: "image",
      spec,
      state,
      expires_at: new Date(clock.getTime() + 86_400_000).toISOString(),
    });
    return created;
  };

  it("watches every bot of a tenant for its rules, a bot's own alert of a kind and its own notify URLs overriding them; another tenant's bots are not watched", async () => {
    const tenantReceiver = await receiver();
    const ownReceiver = await receiver();
    receivers.push(tenantReceiver, ownReceiver);
    await store.tenantBotAlerts.set("acme", {
      alerts: [{ kind: "unhealthy" }, { kind: "memory", above_percent: 50, for_secs: 0 }],
      notify: [tenantReceiver.url],
      updated_by: "acme-admin",
    });
    await bot("plain", "acme", "unhealthy");
    await bot("own", "acme", "unhealthy", { alerts: [{ kind: "unhealthy" }], notify: [ownReceiver.url] });
    // Its own memory alert (over 99 %) overrides the tenant's (over 50 %): at 60 % it is quiet.
    const big = await bot("big", "acme", "running", {
      alerts: [{ kind: "memory", above_percent: 99, for_secs: 0 }],
      notify: [ownReceiver.url],
    });
    const heavy = await bot("heavy", "acme", "running");
    await bot("other", "globex", "unhealthy");
    await bot("nobodys", null, "unhealthy");
    for (const each of [big, heavy]) {
      await store.botHistory.addSamples([
        {
          bot_id: each.id,
          tenant_id: "acme",
          at: new Date(clock.getTime() - 1000).toISOString(),
          cpu_percent: 1,
          memory_bytes: 60,
          memory_limit_bytes: 100,
          net_rx_bytes: 0,
          net_tx_bytes: 0,
          pids: 1,
          restarts: 0,
        },
      ]);
    }
    watch = newWatch();
    await watch.round(clock.getTime());
    await watch.settled();
    const told = (list: Receiver) => list.notices.map((notice) => `${notice.bot} ${notice.kind}`).sort();
    expect(told(tenantReceiver)).toEqual(["heavy memory", "plain unhealthy"]);
    expect(told(ownReceiver)).toEqual(["own unhealthy"]);
    // Once per episode: a second round tells no one again.
    await watch.round(clock.getTime());
    await watch.settled();
    expect(tenantReceiver.notices).toHaveLength(2);
    expect(ownReceiver.notices).toHaveLength(1);
    const episodes = await store.botHistory.alerts(heavy.id);
    expect(episodes.map((episode) => [episode.kind, episode.notify_error])).toEqual([["memory", null]]);
    expect(episodes[0]?.notified_at).not.toBeNull();
  });

  it("sends a bot's notice while another bot's receiver never answers, and records that one's timeout after the workflow notify timeout", async () => {
    const hung = await receiver(true);
    const fast = await receiver();
    receivers.push(hung, fast);
    // The hung receiver's bot comes first in the round.
    const slow = await bot("slow", "acme", "unhealthy", {
      alerts: [{ kind: "unhealthy" }],
      notify: [hung.url],
    });
    await bot("quick", "acme", "unhealthy", { alerts: [{ kind: "unhealthy" }], notify: [fast.url] });
    // One POST's limit is short here; the server's own (the workflow notify timeout) is checked below.
    const limitMs = 1500;
    watch = newWatch(limitMs);
    // The collector runs while the POSTs wait, as it does on a busy server: three times in each
    // try's 1.5 s. Every 100 ms it was most of this file's CPU (a whole worker's heap each time).
    const collector = setInterval(collect, 500);
    onTestFinished(() => clearInterval(collector));
    const started = Date.now();
    await watch.round(clock.getTime());
    // The round does not wait for the receivers: when it returns, no POST to the hung one has
    // ended (its first ends at its 1.5 s limit, then two more tries). Told by the receiver, not
    // by a clock around the round, whose own store reads a loaded machine and the collector stretch.
    expect(hung.notices.length - hung.open.size, "POSTs to the hung receiver that had ended").toBe(0);
    await fast.first;
    // The quick bot's notice came while the slow bot's receiver still held its first POST.
    expect(hung.notices.length).toBeGreaterThan(0);
    expect(hung.open.size).toBe(1);
    expect(fast.notices.map((notice) => notice.bot)).toEqual(["quick"]);
    await watch.settled();
    // Three tries of the limit each, 500 ms apart: then the episode says why it was not told.
    expect(Date.now() - started).toBeGreaterThanOrEqual(3 * limitMs);
    const [episode] = await store.botHistory.alerts(slow.id);
    expect(episode?.notify_error).toMatch(/NOTIFY_FAILED: notify failed after 3 attempts/);
    expect(episode?.notify_error).toContain(`within ${limitMs} ms`);
    expect(hung.notices).toHaveLength(3);
    await watch.stop();
    // A watch made as the server makes it holds each POST to the workflow notify timeout: its
    // failure says so (a receiver that refuses the connection fails at once, no wait for it).
    const gone = await receiver();
    await gone.close();
    const refused = await bot("refused", "acme", "unhealthy", {
      alerts: [{ kind: "unhealthy" }],
      notify: [gone.url],
    });
    watch = newWatch();
    await watch.round(clock.getTime());
    await watch.settled();
    const [refusal] = await store.botHistory.alerts(refused.id);
    expect(refusal?.notify_error).toContain(`within ${notifyTimeoutMs} ms`);
    // The bots told before are not told again by the new watch: once per episode.
    expect(fast.notices).toHaveLength(1);
    expect(hung.notices).toHaveLength(3);
  }, 90_000);
});
