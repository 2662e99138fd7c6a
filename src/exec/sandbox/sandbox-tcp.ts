import { execFile, execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * Plain TCP and UDP (ssh, a database on a public address) for a sandbox with its own network:
 * `pasta` (passt) gives the namespace a user-mode network whose connections it makes from the
 * host, and nftables rules set there before the command starts hold them to public addresses.
 * pasta has no destination filter: without the rules a sandbox would reach the runner's private
 * network and, through pasta's port forwarding, its loopback.
 *
 * Needs a namespace where nothing of the run has started yet (a run's sandbox as it is made, or
 * a bwrap with `--info-fd` and `--block-fd`). Costs 50 to 250 ms (pasta's start and nft): once
 * per run's sandbox, not per command.
 */

/**
 * Why this runner cannot give its tenants' sandboxes plain TCP, or undefined when it can: it runs
 * as root (to set the namespace's rules) and has pasta, nft and nsenter.
 */
export function plainTcpProblem(tools: PlainTcpTools = {}): string | undefined {
  if (process.getuid?.() !== 0)
    return "the runner does not run as root (it sets each sandbox's nftables rules)";
  for (const [tool, args] of [
    [tools.pasta ?? "pasta", ["--version"]],
    [tools.nft ?? "nft", ["--version"]],
    [tools.nsenter ?? "nsenter", ["--version"]],
  ] as const) {
    try {
      execFileSync(tool, [...args], { stdio: "ignore", timeout: 5_000 });
    } catch {
      return `${tool} is not installed (apt-get install passt nftables util-linux)`;
    }
  }
  return undefined;
}

export interface PlainTcpTools {
  pasta?: string;
  nft?: string;
  nsenter?: string;
}

/** pasta's pid files, in a folder of this process's own: their paths mark the pastas it started. */
const pidFolderPrefix = "runyard-pasta-";
let pidFolder: string | undefined;

/**
 * Sets `rules` in the network namespace of `pid` (a sandbox whose command has not started), then
 * attaches pasta: the host's addresses and routes, connections made from the host, no port
 * forwarded either way (no sandbox listener exposed on the host, no host loopback reached from
 * inside), the gateway address not mapped to the host. Resolves with pasta's pid; pasta does not
 * notice a /proc-named namespace going away, so its owner ends it (`detachPlainTcp`).
 */
export async function attachPlainTcp(pid: number, rules: string, tools: PlainTcpTools = {}): Promise<number> {
  // Root's CAP_NET_ADMIN holds in every namespace below its own. A runner of another user would
  // have to enter the sandbox's user namespace, where exec drops the capabilities of a uid that
  // is not 0 there (bwrap maps the runner's uid as itself): not done yet.
  if (process.getuid?.() !== 0)
    throw new Error("plain TCP for a sandbox needs a runner that runs as root (to set its nftables rules)");
  await run(tools.nsenter ?? "nsenter", ["-t", String(pid), "-n", tools.nft ?? "nft", "-f", "-"], rules);
  pidFolder ??= mkdtempSync(join(tmpdir(), pidFolderPrefix));
  const pidFile = join(pidFolder, `${pid}.pid`);
  await run(tools.pasta ?? "pasta", [
    "--config-net",
    "--no-map-gw",
    "-t",
    "none",
    "-u",
    "none",
    "-T",
    "none",
    "-U",
    "none",
    "--quiet",
    // As root pasta would change to nobody, who cannot join the namespace root's bwrap made; and
    // it joins the network namespace only, as the sandbox's user namespace has no uid 0 in it.
    "--runas",
    "0:0",
    "--pid",
    pidFile,
    "--netns",
    `/proc/${pid}/ns/net`,
    "--netns-only",
  ]);
  const pasta = Number(readFileSync(pidFile, "utf8").trim());
  if (!Number.isInteger(pasta) || pasta <= 0) throw new Error(`pasta wrote no pid to ${pidFile}`);
  return pasta;
}

/** Ends the pasta `attachPlainTcp` started (`pasta` its pid), if it is still that pasta. */
export function detachPlainTcp(pasta: number): void {
  if (ourPasta(pasta)) signal(pasta);
}

/**
 * Ends the pastas a runyard process started whose namespace is gone: those a runner killed with
 * its sandboxes left (pasta would serve nothing until the machine restarts). Answers how many.
 */
export function sweepPlainTcp(): number {
  let ended = 0;
  for (const entry of safeList("/proc")) {
    const pasta = Number(entry);
    if (!Number.isInteger(pasta) || pasta === process.pid) continue;
    const target = ourPasta(pasta);
    if (target === undefined) continue;
    if (safeList(`/proc/${target}`).length > 0) continue;
    if (signal(pasta)) ended++;
  }
  return ended;
}

/** The pid whose namespace `pid` serves, when `pid` is a pasta runyard started; else undefined. */
function ourPasta(pid: number): number | undefined {
  let args: string[];
  try {
    args = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
  } catch {
    return undefined;
  }
  const pidFile = args[args.indexOf("--pid") + 1] ?? "";
  if (args.indexOf("--pid") < 0 || !pidFile.includes(`/${pidFolderPrefix}`)) return undefined;
  const netns = /^\/proc\/(\d+)\/ns\/net$/.exec(args[args.indexOf("--netns") + 1] ?? "");
  return netns ? Number(netns[1]) : undefined;
}

function signal(pid: number): boolean {
  try {
    process.kill(pid, "SIGTERM");
    return true;
  } catch {
    return false;
  }
}

function safeList(folder: string): string[] {
  try {
    return readdirSync(folder);
  } catch {
    return [];
  }
}

function run(command: string, args: string[], input?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = execFile(command, args, { timeout: 10_000 }, (error, _stdout, stderr) => {
      if (error) reject(new Error(`${command} failed: ${String(stderr).trim() || error.message}`));
      else resolve();
    });
    child.stdin?.end(input ?? "");
  });
}
