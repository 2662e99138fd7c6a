import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { RunEvent } from "../../src/core/events.js";
import { recordStart } from "../cost/record.js";

export const repoRoot = fileURLToPath(new URL("../..", import.meta.url));
export const cliPath = join(repoRoot, "bin", "runyard.js");

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  env?: Record<string, string>;
  cwd?: string;
  /** Piped to stdin (as `printf %s "$VALUE" | runyard ...`); without it stdin is closed. */
  input?: string;
  /** Called with each stdout chunk; lets a test act when the run reaches a point. */
  onStdout?: (chunk: string, child: ChildProcess) => void;
  /** Another build's `bin/runyard.js` (a previous release's) instead of this checkout's. */
  bin?: string;
}

/** Runs the built `runyard` CLI as a user would, and waits for it to exit. */
export function runCli(args: string[], options: CliOptions = {}): Promise<CliResult> {
  recordStart("cli");
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [options.bin ?? cliPath, ...args], {
      cwd: options.cwd ?? repoRoot,
      env: { ...process.env, NO_COLOR: "1", ...options.env },
      stdio: [options.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    });
    child.stdin?.end(options.input);
    let stdout = "";
    let stderr = "";
    child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
      options.onStdout?.(chunk, child);
    });
    child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** Parses `--json` output: every line must be a valid spine event. */
export function parseEvents(stdout: string): RunEvent[] {
  return stdout
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => RunEvent.parse(JSON.parse(line)));
}

export function finished(events: RunEvent[]): Extract<RunEvent, { type: "run.finished" }> {
  const last = events.at(-1);
  if (last?.type !== "run.finished") throw new Error(`last event is ${last?.type}, not run.finished`);
  return last;
}

export function tempDir(prefix = "runyard-test-"): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  madeFolders.push(dir);
  return dir;
}

/** Folders `tempDir` made in this test file's process (removeTempDirs). */
const madeFolders: string[] = [];

/**
 * Removes the folders `tempDir` made: after each integration test file (remove-temp-folders.ts),
 * since a runner's home with its agents' state is a few hundred MB and a suite makes thousands.
 */
export function removeTempDirs(): void {
  for (const dir of madeFolders.splice(0)) {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // a folder a test left busy: the OS temp folder's own clean-up takes it
    }
  }
}

/** Writes a workflow into a fresh temp folder and returns its path. */
export function writeWorkflow(yaml: string, dir = tempDir()): string {
  const path = join(dir, "flow.yaml");
  writeFileSync(path, yaml);
  return path;
}

/** Pids of live processes whose command line contains `marker`. */
export function processesWith(marker: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8");
      const state = readFileSync(`/proc/${entry}/stat`, "utf8").split(") ")[1]?.[0];
      if (cmdline.includes(marker) && state !== "Z") pids.push(Number(entry));
    } catch {
      // The process ended while we looked.
    }
  }
  return pids;
}
