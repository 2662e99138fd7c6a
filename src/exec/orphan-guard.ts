import { type ChildProcess, spawn } from "node:child_process";
import {
  closeSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import { processStartTime } from "../core/pid-lock.js";
import { groupIsAlive, signalGroup } from "./resources.js";
import type { ProcessGroupWatch } from "./types.js";

/**
 * Makes sure no step outlives the runner that started it, by two mechanisms (either alone leaves a gap):
 * - The journal (`process-groups.log` in the runner's state folder), appended synchronously as a
 *   step's group starts (`+ pgid starttime`) and ends (`- pgid`). The runner's next start, before
 *   its hello, kills every listed group whose leader has the same start time (never a reused pid).
 * - The reaper: one small bash per runner, in its own group, deaf to INT/TERM/HUP, reading a pipe
 *   from the runner. When the runner dies, SIGKILL included, the pipe ends and the reaper stops
 *   every listed group (SIGTERM, SIGKILL after the grace): steps die within moments, not at the
 *   next start. One process per runner, nothing per step.
 *
 * The fork-server also stops its groups when the runner goes, but not when it dies with the
 * runner, nor for plain spawn: the journal stays the guarantee. `PR_SET_PDEATHSIG` on a step's
 * leader would reach the leader alone, and kill the process the journal recognises its group by.
 */
export class OrphanGuard implements ProcessGroupWatch {
  private readonly live = new Set<number>();
  private reaper: ChildProcess | undefined;

  private constructor(
    private readonly journalPath: string,
    private readonly fd: number,
  ) {}

  /**
   * Opens the journal in `stateDir`, kills what an earlier life of this runner left running and
   * starts the reaper. Resolves with the process groups it had to kill.
   */
  static async open(
    stateDir: string,
    killGraceMs: number,
  ): Promise<{ guard: OrphanGuard; killed: number[] }> {
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    const journalPath = join(stateDir, "process-groups.log");
    const killed = await killSurvivors(readJournal(journalPath), killGraceMs);
    // Start afresh: what was listed is dead now.
    const fresh = `${journalPath}.new`;
    writeFileSync(fresh, bootLine(), { mode: 0o600 });
    renameSync(fresh, journalPath);
    const guard = new OrphanGuard(journalPath, openSync(journalPath, "a", 0o600));
    guard.startReaper(killGraceMs);
    return { guard, killed };
  }

  started(pgid: number): void {
    const startTime = processStartTime(pgid);
    if (startTime === undefined) return; // gone already: nothing can survive it
    this.live.add(pgid);
    writeSync(this.fd, `+ ${pgid} ${startTime}\n`);
  }

  ended(pgid: number): void {
    if (!this.live.delete(pgid)) return;
    // An empty journal lists nothing; starting it over keeps it from growing with every step.
    if (this.live.size === 0) {
      ftruncateSync(this.fd, 0);
      writeSync(this.fd, bootLine());
    } else {
      writeSync(this.fd, `- ${pgid}\n`);
    }
  }

  /** Stops the reaper and closes the journal; groups still live stay listed for the next start. */
  close(): void {
    this.reaper?.stdin?.destroy();
    this.reaper = undefined;
    closeSync(this.fd);
  }

  private startReaper(killGraceMs: number): void {
    // No start-up file of the operator's: bash reads ~/.bashrc even when not interactive if its
    // stdin is a socket (as Node's pipes are), and $BASH_ENV always; what they start (a
    // background `pyenv rehash`, say) would hold this pipe open and outlive the runner.
    const child = spawn(
      "bash",
      [
        "--norc",
        "--noprofile",
        "-c",
        reaperScript,
        "runyard-reaper",
        this.journalPath,
        String(killGraceMs / 1000),
      ],
      {
        detached: true,
        stdio: ["pipe", "ignore", "ignore"],
        env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
      },
    );
    child.on("error", () => {}); // no bash: the journal still covers the next start
    child.unref();
    (child.stdin as unknown as { unref?: () => void } | null)?.unref?.();
    this.reaper = child;
  }
}

/**
 * Waits for its stdin to end (the runner is gone), then stops the groups the journal lists whose
 * leader still has the recorded start time: SIGTERM, then SIGKILL after the grace.
 */
const reaperScript = `
trap '' INT TERM HUP
while read -r _; do :; done
journal=$1 grace=$2 boot=$(cat /proc/sys/kernel/random/boot_id)
declare -A live
while read -r op pgid start; do
  case $op in
    boot) [ "$pgid" = "$boot" ] || exit 0 ;;
    +) live[$pgid]=$start ;;
    -) unset "live[$pgid]" ;;
  esac
done < "$journal"
same() {
  local want=$2 stat rest
  read -r stat < "/proc/$1/stat" 2>/dev/null || return 1
  rest=\${stat##*) }
  set -- $rest
  [ "\${20}" = "$want" ]
}
stopped=()
for pgid in "\${!live[@]}"; do
  same "$pgid" "\${live[$pgid]}" && kill -TERM -- "-$pgid" 2>/dev/null && stopped+=("$pgid")
done
[ \${#stopped[@]} -eq 0 ] && exit 0
sleep "$grace"
for pgid in "\${stopped[@]}"; do kill -KILL -- "-$pgid" 2>/dev/null; done
exit 0
`;

interface JournalEntry {
  pgid: number;
  startTime: string;
}

function readJournal(path: string): JournalEntry[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return [];
  }
  const live = new Map<number, string>();
  for (const line of text.split("\n")) {
    const [op, pgid, startTime] = line.split(" ");
    // Start times count from boot: after a reboot they mean nothing, and nothing survived anyway.
    if (op === "boot" && line !== bootLine().trimEnd()) return [];
    if (op === "+" && pgid && startTime) live.set(Number(pgid), startTime);
    if (op === "-" && pgid) live.delete(Number(pgid));
  }
  return [...live].map(([pgid, startTime]) => ({ pgid, startTime }));
}

/** Kills the listed groups whose leader is the very process recorded; resolves once they are gone. */
async function killSurvivors(entries: JournalEntry[], killGraceMs: number): Promise<number[]> {
  const killed = entries
    .filter(({ pgid, startTime }) => processStartTime(pgid) === startTime)
    .map((e) => e.pgid);
  for (const pgid of killed) signalGroup(pgid, "SIGKILL");
  // The leader may be a zombie of the dead runner (reparented to init, reaped at once) or gone;
  // what matters is that no member of the group is left.
  const deadline = Date.now() + Math.max(killGraceMs, 2000);
  while (killed.some(groupIsAlive) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    for (const pgid of killed) signalGroup(pgid, "SIGKILL");
  }
  return killed;
}

let bootId: string | undefined;

/** The journal's first line: which boot of the machine its start times belong to. */
function bootLine(): string {
  bootId ??= readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
  return `boot ${bootId}\n`;
}
