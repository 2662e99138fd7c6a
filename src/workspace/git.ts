import { spawn } from "node:child_process";
import { RunyardError } from "../core/errors.js";
import { signalGroup } from "../exec/resources.js";
import { maskGitOutput } from "./git-failure.js";

/** What one git process did. */
export interface GitResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface GitCall {
  /** The folder git runs in (a worktree), or the mirror given as `--git-dir` in `args`. */
  cwd?: string;
  /** Laid over the clean environment for this one process (askpass, author, temporary index). */
  env?: Record<string, string>;
  signal?: AbortSignal;
  /** Written to git's standard input (`pack-objects --revs`); none when absent. */
  input?: string;
}

/**
 * The only runner variables git gets (programs, SSH agent, proxies): others (GIT_DIR, GIT_INDEX_FILE of a
 * runner started from a hook, the runner's own tokens) would point git elsewhere or leak.
 */
const passedThrough = [
  "PATH",
  "HOME",
  "USER",
  "LOGNAME",
  "TMPDIR",
  "SSH_AUTH_SOCK",
  "GIT_SSH_COMMAND",
  "GIT_SSL_CAINFO",
  "SSL_CERT_FILE",
  "SSL_CERT_DIR",
  "http_proxy",
  "https_proxy",
  "no_proxy",
  "all_proxy",
  "HTTP_PROXY",
  "HTTPS_PROXY",
  "NO_PROXY",
  "ALL_PROXY",
];

/** The environment every git process starts from. */
export function cleanGitEnv(from: Record<string, string | undefined>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of passedThrough) {
    const value = from[name];
    if (value !== undefined) env[name] = value;
  }
  // A prompt nobody can answer hangs a headless run; English messages are what failures are read by.
  env.GIT_TERMINAL_PROMPT = "0";
  env.LC_ALL = "C";
  env.GIT_SSH_COMMAND ??= "ssh -o BatchMode=yes";
  return env;
}

/**
 * Over the user's git config on every call: no credential helper stores a run's token (`credential.helper=`
 * empties the list), no gc runs amid another run's worktree add, a slow server times out, not hangs.
 */
const baseConfig = [
  "credential.helper=",
  "gc.auto=0",
  "maintenance.auto=false",
  "http.lowSpeedLimit=1",
  "http.lowSpeedTime=60",
  // Only a repo's transports: a machine gitconfig allowing `ext::` (any command, as the runner) is overruled.
  "protocol.allow=never",
  ...["https", "http", "ssh", "git", "file"].map((protocol) => `protocol.${protocol}.allow=always`),
].flatMap((setting) => ["-c", setting]);

/** `result`, or WORKSPACE_GIT_FAILED saying `what` failed in git's own (masked) words. */
export function checkedGit(result: GitResult, what: string): GitResult {
  if (result.code === 0) return result;
  throw new RunyardError("WORKSPACE_GIT_FAILED", `${what}: ${maskGitOutput(result.stderr, [])}`);
}

/** How long git may take to clean up after SIGTERM before it is killed. */
const KILL_GRACE_MS = 1000;

/** Runs git (no shell); an abort kills its process group (git-remote-https, ssh, index-pack): CANCELED. */
export function runGit(env: Record<string, string>, args: readonly string[], call: GitCall = {}) {
  return new Promise<GitResult>((resolve, reject) => {
    if (call.signal?.aborted) {
      reject(new RunyardError("CANCELED", "canceled before git started"));
      return;
    }
    const child = spawn("git", [...baseConfig, ...args], {
      cwd: call.cwd,
      env: { ...env, ...call.env },
      stdio: ["pipe", "pipe", "pipe"],
      detached: true,
    });
    // Git that exits before reading all of it is answered by its exit code, not by EPIPE here.
    child.stdin.on("error", () => undefined);
    child.stdin.end(call.input);
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (data: string) => {
      stdout += data;
    });
    child.stderr.setEncoding("utf8").on("data", (data: string) => {
      stderr += data;
    });
    let aborted = false;
    let killTimer: NodeJS.Timeout | undefined;
    const onAbort = () => {
      aborted = true;
      const pgid = child.pid;
      if (pgid === undefined) return;
      // SIGTERM first: git removes its lock files, so a canceled fetch leaves no mirror locked; then SIGKILL.
      signalGroup(pgid, "SIGTERM");
      killTimer = setTimeout(() => signalGroup(pgid, "SIGKILL"), KILL_GRACE_MS);
    };
    call.signal?.addEventListener("abort", onAbort, { once: true });
    child.on("error", (error) => {
      call.signal?.removeEventListener("abort", onAbort);
      reject(
        new RunyardError("WORKSPACE_GIT_FAILED", `cannot start git: ${error.message}`, { cause: error }),
      );
    });
    child.on("close", (code, signal) => {
      call.signal?.removeEventListener("abort", onAbort);
      clearTimeout(killTimer);
      if (aborted) reject(new RunyardError("CANCELED", "canceled while git ran"));
      else resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
  });
}
