import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { until } from "../helpers/processes.js";
import { adminToken, freePort, lossTimings, type Proc, startCli } from "../helpers/server.js";
import { type ProcessInfo, processTree, stillRunning } from "./process-tree.js";

/**
 * Replicas presume one another dead after 4 s of silence: a kill every 5 s is adopted before the
 * next, and a replica starved on a busy 2-core machine (heartbeat writes of 2 s were seen) is not
 * fenced for it.
 */
const replicaTimings = { RUNYARD_REPLICA_HEARTBEAT_MS: "400", RUNYARD_REPLICA_LEASE_MS: "4000" };
const secretKey = "soak-test-secret-key-0123456789abcdefgh";
/** How long what a killed process started may outlive it before the soak calls it left behind. */
const leftoverDeadlineMs = 10_000;

export type MemberKind = "replica" | "runner";

/**
 * A server replica or a runner of the soak's fleet: a real process of the built CLI that can be
 * killed -9 and started again with the same flags, home and (for a replica) port.
 */
export interface Member {
  readonly name: string;
  readonly kind: MemberKind;
  /** The process now; a new one after each start. */
  proc(): Proc;
  start(): Promise<void>;
  /**
   * kill -9, then waits until everything the process had started is gone; resolves with the
   * moment the signal went (epoch ms) and what still runs after the deadline (an empty list when
   * nothing was left behind).
   */
  kill(): Promise<{ killedAt: number; left: ProcessInfo[] }>;
  /** Set once the process has ended without being killed: its exit code, last line and the warnings before it. */
  exitedOnItsOwn(): { code: number | null; lastLine: string } | undefined;
}

/** Starts the CLI and waits until it says `ready`; a start that never gets there is killed. */
async function launch(
  args: string[],
  env: Record<string, string>,
  cwd: string,
  ready: string,
): Promise<Proc> {
  const proc = startCli(args, env, cwd);
  try {
    await proc.waitFor(ready, 30_000);
    return proc;
  } catch (error) {
    await proc.kill("SIGKILL");
    throw error;
  }
}

function memberOf(name: string, kind: MemberKind, begin: () => Promise<Proc>, logs: string): Member {
  let current: Proc | undefined;
  let killing = false;
  let lives = 0;
  /** Each life's output goes to `<root>/logs/<name>.<life>.log` once it ends. */
  const keepLog = (): void => {
    if (current) writeFileSync(join(logs, `${name}.${lives}.log`), current.output());
  };
  return {
    name,
    kind,
    proc: () => {
      if (!current) throw new Error(`${name} was never started`);
      return current;
    },
    start: async () => {
      current = await begin();
      killing = false;
      lives++;
    },
    kill: async () => {
      if (!current) return { killedAt: Date.now(), left: [] };
      const pid = current.child.pid;
      const tree = pid === undefined ? [] : processTree(pid);
      killing = true;
      const exited = current.kill("SIGKILL");
      const killedAt = Date.now();
      await exited;
      keepLog();
      try {
        await until(`what ${name} started ends`, () => stillRunning(tree).length === 0, leftoverDeadlineMs);
      } catch {
        // reported by the caller
      }
      return { killedAt, left: stillRunning(tree) };
    },
    exitedOnItsOwn: () => {
      if (!current || killing || (current.child.exitCode === null && current.child.signalCode === null)) {
        return undefined;
      }
      const lines = current.output().trim().split("\n");
      // The last line, after the warnings before it (a slow heartbeat says why the fleet fenced it).
      const warnings = lines.slice(0, -1).filter((line) => /"level":(40|50)/.test(line));
      return {
        code: current.child.exitCode,
        lastLine: [...warnings.slice(-4), lines.at(-1) ?? ""].join("\n      "),
      };
    },
  };
}

export interface Fleet {
  readonly databaseUrl: string;
  readonly replicas: readonly Member[];
  readonly runners: readonly Member[];
  readonly replicaUrls: readonly string[];
  /** Every member, replicas first. */
  readonly members: readonly Member[];
}

export interface FleetOptions {
  databaseUrl: string;
  root: string;
  replicas: number;
  runners: number;
  capacity: number;
  runnerToken: (firstReplicaUrl: string) => Promise<string>;
}

/**
 * Starts the replicas on one PostgreSQL database, then the runners, each listing every replica
 * URL (its own first one in turn). A runner's steps run in its cwd, `<root>/runners/<name>`,
 * which is how a step's ledger names its runner.
 */
export async function startFleet(options: FleetOptions): Promise<Fleet> {
  const logs = join(options.root, "logs");
  mkdirSync(logs, { recursive: true });
  const replicas: Member[] = [];
  const replicaUrls: string[] = [];
  for (let i = 1; i <= options.replicas; i++) {
    const home = join(options.root, "homes", `replica-${i}`);
    mkdirSync(home, { recursive: true });
    const port = await freePort();
    replicaUrls.push(`http://127.0.0.1:${port}`);
    const args = ["server", "--port", String(port), "--home", home];
    const env = {
      RUNYARD_ADMIN_TOKEN: adminToken,
      RUNYARD_LOG_LEVEL: "info",
      RUNYARD_DATABASE_URL: options.databaseUrl,
      RUNYARD_SECRET_KEY: secretKey,
      ...lossTimings,
      // The lease a server has by default: a runner whose replica was killed reconnects to
      // another within it, so a live runner's attempt is never taken for lost (with the tests'
      // 2 s, on a machine three times slower than usual, five were, and their later lines refused).
      RUNYARD_LEASE_MS: "10000",
      ...replicaTimings,
    };
    const member = memberOf(
      `replica-${i}`,
      "replica",
      () => launch(args, env, options.root, "listening on http"),
      logs,
    );
    await member.start();
    replicas.push(member);
  }
  const token = await options.runnerToken(replicaUrls[0] as string);
  const runners: Member[] = [];
  for (let i = 1; i <= options.runners; i++) {
    const name = `runner-${i}`;
    const home = join(options.root, "homes", name);
    const cwd = join(options.root, "runners", name);
    mkdirSync(home, { recursive: true });
    mkdirSync(cwd, { recursive: true });
    const shift = (i - 1) % replicaUrls.length;
    const urls = [...replicaUrls.slice(shift), ...replicaUrls.slice(0, shift)].join(",");
    const args = [
      "runner",
      "--server",
      urls,
      "--token",
      token,
      "--id",
      name,
      "--capacity",
      String(options.capacity),
    ];
    // Sandbox off: the soak measures crash recovery, and its steps append to one ledger the test
    // reads, name their runner by its working folder and report host pids (the isolation of runs
    // is tested with the sandbox on in run-folder, run-tmp and run-sandbox-attacks).
    const env = { ...lossTimings, RUNYARD_LOG_LEVEL: "info", RUNYARD_HOME: home, RUNYARD_SANDBOX: "off" };
    const member = memberOf(name, "runner", () => launch(args, env, cwd, `runner ${name} connected`), logs);
    await member.start();
    runners.push(member);
  }
  return {
    databaseUrl: options.databaseUrl,
    replicas,
    runners,
    replicaUrls,
    members: [...replicas, ...runners],
  };
}
