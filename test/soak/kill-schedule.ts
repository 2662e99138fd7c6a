import { setTimeout as sleep } from "node:timers/promises";
import { seededRandom } from "./seeded-random.js";
import type { Member } from "./soak-fleet.js";
import type { Kill } from "./soak-verdict.js";

export interface KillSchedule {
  /** Every kill so far. */
  readonly kills: readonly Kill[];
  /** Ends the schedule once the kill and restart in hand are done: every member is up then. */
  stop(): Promise<void>;
}

/**
 * Every `everyMs` (or at once when a restart took longer), kills -9 a member drawn from `seed`,
 * waits until nothing it started still runs (what does after 10 s is an anomaly), and starts it
 * again with the same flags, home and port. A member that exits on its own is reported and
 * started again at once.
 */
export function startKillSchedule(options: {
  members: readonly Member[];
  seed: number;
  everyMs: number;
  note: (what: string) => void;
  anomalies: string[];
}): KillSchedule {
  const { note, anomalies } = options;
  const victims = seededRandom(options.seed, 2);
  const kills: Kill[] = [];
  let on = true;
  const done = (async () => {
    let next = Date.now() + options.everyMs;
    while (on) {
      // A member that ended on its own is an anomaly; it is started again, as a supervisor would.
      for (const member of options.members) {
        const exit = member.exitedOnItsOwn();
        if (!exit) continue;
        const at = new Date().toISOString();
        anomalies.push(`${member.name} exited on its own (code ${exit.code}) by ${at}: ${exit.lastLine}`);
        note(`${member.name} exited on its own (code ${exit.code}): ${exit.lastLine}`);
        await member.kill();
        if (!(await restart(member, note, anomalies))) on = false;
      }
      if (Date.now() < next) {
        await sleep(Math.min(100, next - Date.now()));
        continue;
      }
      const victim = victims.pick(options.members);
      next = Date.now() + options.everyMs;
      const pid = victim.proc().child.pid;
      const { killedAt, left } = await victim.kill();
      const kill: Kill = { member: victim.name, kind: victim.kind, at: killedAt, nextLifeFrom: Infinity };
      kills.push(kill);
      note(`kill -9 ${victim.name} (pid ${pid}) at ${new Date(killedAt).toISOString()}`);
      if (left.length > 0) {
        anomalies.push(
          `${victim.name} killed -9 at ${new Date(killedAt).toISOString()}: ${left.length} process(es) it had started still ran 10 s later: ${left.map((each) => `${each.pid} ${each.command}`).join("; ")}`,
        );
      }
      kill.nextLifeFrom = Date.now();
      if (!(await restart(victim, note, anomalies))) on = false;
    }
  })();
  return {
    kills,
    stop: async () => {
      on = false;
      await done;
    },
  };
}

/**
 * Starts a killed member again; a start that fails is tried again, up to five times. False when
 * it never came back (reported; the schedule then stops).
 */
async function restart(member: Member, note: (what: string) => void, anomalies: string[]): Promise<boolean> {
  for (let attempt = 1; ; attempt++) {
    try {
      await member.start();
      note(`${member.name} started again (pid ${member.proc().child.pid})`);
      return true;
    } catch (error) {
      note(`${member.name} failed to start: ${(error as Error).message.slice(0, 500)}`);
      if (attempt === 5) {
        anomalies.push(
          `${member.name} did not start again in 5 tries: ${(error as Error).message.slice(0, 500)}`,
        );
        return false;
      }
    }
  }
}
