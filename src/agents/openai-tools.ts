/**
 * The built-in `openai` loop's tools (openai.ts): files and a command, confined to the workspace. Model
 * arguments are untrusted: paths resolve against the workspace, `..` is refused, and the real path of the
 * file or its nearest existing parent must stay inside the workspace's, so no symlink leads out.
 */
import { lstat, mkdir, readdir, readFile, realpath, stat, writeFile } from "node:fs/promises";
import { dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import type { ErrorInfo } from "../core/events.js";
import type { ProcessLauncher } from "../exec/types.js";
import { agentError } from "./cli-agent.js";

/** Where and how the tools run. */
export interface ToolContext {
  workspace: string;
  launcher: ProcessLauncher;
  signal: AbortSignal;
  /** The environment of `run_command`, without the loop's API key. */
  env: Record<string, string>;
  /** Any sign of life while a command runs. */
  alive(): void;
  /** Usage of the commands run, for the turn's figures. */
  onCommandEnd?(result: { cpuMs: number; memoryPeakBytes: number }): void;
}

export interface ToolResult {
  output: string;
  isError: boolean;
  /** The command could not run (launcher refused, its cluster failed): the turn fails; no answer mends it. */
  fatal?: ErrorInfo;
}

/** Enough for a source file; more only fills the model's context. */
const MAX_READ_CHARS = 256 * 1024;
const MAX_LIST_ENTRIES = 1000;
const MAX_SEARCH_MATCHES = 200;
const MAX_SEARCH_FILE_BYTES = 1024 * 1024;
/** A command's output beyond this keeps its tail: the end of a build log says what failed. */
const MAX_COMMAND_OUTPUT_CHARS = 64 * 1024;
const DEFAULT_COMMAND_TIMEOUT_SECS = 120;
const MAX_COMMAND_TIMEOUT_SECS = 600;
/** Folders a listing or search skips unless asked for by path: large and never the task. */
const SKIPPED_DIRS = new Set([".git", "node_modules"]);

/** The tools in the Chat Completions `tools` shape. */
export const toolDefinitions = [
  tool(
    "read_file",
    "Read a text file of the workspace.",
    {
      path: { type: "string", description: "Path relative to the workspace." },
      offset: { type: "integer", description: "First line to return (1-based); default 1." },
      limit: { type: "integer", description: "Most lines to return; default all." },
    },
    ["path"],
  ),
  tool(
    "write_file",
    "Create or overwrite a file of the workspace with the given content (parent folders are created).",
    {
      path: { type: "string", description: "Path relative to the workspace." },
      content: { type: "string", description: "The whole new content of the file." },
    },
    ["path", "content"],
  ),
  tool(
    "list_files",
    "List the files and folders under a folder of the workspace (folders end in /).",
    {
      path: { type: "string", description: "Folder relative to the workspace; default the workspace." },
      recursive: {
        type: "boolean",
        description: "Include subfolders (skips .git and node_modules); default false.",
      },
    },
    [],
  ),
  tool(
    "search",
    "Search the workspace's text files for a regular expression; prints file:line: text.",
    {
      pattern: { type: "string", description: "A JavaScript regular expression." },
      path: { type: "string", description: "File or folder to search; default the workspace." },
      ignore_case: { type: "boolean", description: "Match case-insensitively; default false." },
    },
    ["pattern"],
  ),
  tool(
    "run_command",
    "Run a bash command in the workspace folder; prints its exit code and output.",
    {
      command: { type: "string", description: "The bash command line." },
      timeout_secs: {
        type: "integer",
        description: `Stop it after this long; default ${DEFAULT_COMMAND_TIMEOUT_SECS}, at most ${MAX_COMMAND_TIMEOUT_SECS}.`,
      },
    },
    ["command"],
  ),
] as const;

function tool(name: string, description: string, properties: Record<string, unknown>, required: string[]) {
  return {
    type: "function" as const,
    function: {
      name,
      description,
      parameters: { type: "object", properties, required, additionalProperties: false },
    },
  };
}

/** A refusal the model can read and act on (a bad path, a missing file). */
class ToolError extends Error {}

/** Runs one tool call; a failure becomes an error result for the model, never an exception. */
export async function runTool(name: string, argsJson: string, ctx: ToolContext): Promise<ToolResult> {
  let args: Record<string, unknown>;
  try {
    const parsed: unknown = argsJson.trim() ? JSON.parse(argsJson) : {};
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
      throw new Error("not an object");
    args = parsed as Record<string, unknown>;
  } catch {
    return {
      output: `error: the arguments of ${name} are not a JSON object: ${argsJson.slice(0, 200)}`,
      isError: true,
    };
  }
  try {
    switch (name) {
      case "read_file":
        return ok(await readTool(ctx.workspace, args));
      case "write_file":
        return ok(await writeTool(ctx.workspace, args));
      case "list_files":
        return ok(await listTool(ctx.workspace, args));
      case "search":
        return ok(await searchTool(ctx.workspace, args));
      case "run_command":
        return await commandTool(ctx, args);
      default:
        return { output: `error: no tool named ${name}`, isError: true };
    }
  } catch (error) {
    const message = error instanceof ToolError ? error.message : describeFsError(error);
    return { output: `error: ${message}`, isError: true };
  }
}

function ok(output: string): ToolResult {
  return { output, isError: false };
}

function describeFsError(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === "ENOENT") return "no such file or folder";
  if (code === "EISDIR") return "that is a folder";
  if (code === "ENOTDIR") return "a part of the path is not a folder";
  return error instanceof Error ? error.message : String(error);
}

function stringArg(args: Record<string, unknown>, name: string, required: boolean): string | undefined {
  const value = args[name];
  if (value === undefined || value === null) {
    if (required) throw new ToolError(`missing argument ${name}`);
    return undefined;
  }
  if (typeof value !== "string") throw new ToolError(`argument ${name} must be a string`);
  return value;
}

function numberArg(args: Record<string, unknown>, name: string): number | undefined {
  const value = args[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "number" || !Number.isFinite(value))
    throw new ToolError(`argument ${name} must be a number`);
  return Math.floor(value);
}

/** `path`, absolute; its real path (or its nearest existing parent's) must be inside, else ToolError. */
export async function confine(workspace: string, path: string): Promise<string> {
  if (path.split(/[\\/]/).includes("..")) throw new ToolError(`${path}: paths may not contain ..`);
  const root = await realpath(workspace);
  const target = isAbsolute(path) ? resolve(path) : resolve(workspace, path);
  if (!inside(resolve(workspace), target) && !inside(root, target)) {
    throw new ToolError(`${path}: outside the workspace`);
  }
  let existing = target;
  for (;;) {
    try {
      const real = await realpath(existing);
      if (!inside(root, real)) throw new ToolError(`${path}: leads outside the workspace (a symlink)`);
      return target;
    } catch (error) {
      if (error instanceof ToolError) throw error;
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
      // A dangling symlink would be followed by a write: refuse it rather than guess where it goes.
      if (
        await lstat(existing).then(
          (s) => s.isSymbolicLink(),
          () => false,
        )
      ) {
        throw new ToolError(`${path}: a symlink to nowhere`);
      }
      const parent = dirname(existing);
      if (parent === existing) throw new ToolError(`${path}: outside the workspace`);
      existing = parent;
    }
  }
}

function inside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel === "" || (!rel.startsWith(`..${sep}`) && rel !== ".." && !isAbsolute(rel));
}

function shown(workspace: string, path: string): string {
  return relative(workspace, path) || ".";
}

async function readTool(workspace: string, args: Record<string, unknown>): Promise<string> {
  const path = await confine(workspace, stringArg(args, "path", true)!);
  const text = await readFile(path, "utf8");
  const offset = Math.max(1, numberArg(args, "offset") ?? 1);
  const limit = numberArg(args, "limit");
  let out = text;
  if (offset > 1 || limit !== undefined) {
    const lines = text.split("\n");
    out = lines
      .slice(offset - 1, limit === undefined ? undefined : offset - 1 + Math.max(0, limit))
      .join("\n");
  }
  if (out.length > MAX_READ_CHARS) {
    return `${out.slice(0, MAX_READ_CHARS)}\n[cut at ${MAX_READ_CHARS} characters of ${out.length}; read on with offset/limit]`;
  }
  return out;
}

async function writeTool(workspace: string, args: Record<string, unknown>): Promise<string> {
  const given = stringArg(args, "path", true)!;
  const content = stringArg(args, "content", true)!;
  const path = await confine(workspace, given);
  await mkdir(dirname(path), { recursive: true });
  // The folders just made cannot be symlinks, but the file may have become one since the check.
  await confine(workspace, given);
  await writeFile(path, content);
  return `wrote ${Buffer.byteLength(content)} bytes to ${shown(workspace, path)}`;
}

async function listTool(workspace: string, args: Record<string, unknown>): Promise<string> {
  const dir = await confine(workspace, stringArg(args, "path", false) ?? ".");
  const recursive = args.recursive === true;
  const entries: string[] = [];
  let cut = false;
  const walk = async (folder: string): Promise<void> => {
    const list = (await readdir(folder, { withFileTypes: true })).sort((a, b) =>
      a.name.localeCompare(b.name),
    );
    for (const entry of list) {
      if (entries.length >= MAX_LIST_ENTRIES) {
        cut = true;
        return;
      }
      const path = join(folder, entry.name);
      entries.push(`${shown(workspace, path)}${entry.isDirectory() ? "/" : ""}`);
      if (recursive && entry.isDirectory() && !SKIPPED_DIRS.has(entry.name)) await walk(path);
    }
  };
  await walk(dir);
  if (entries.length === 0) return "(empty)";
  return `${entries.join("\n")}${cut ? `\n[cut at ${MAX_LIST_ENTRIES} entries]` : ""}`;
}

async function searchTool(workspace: string, args: Record<string, unknown>): Promise<string> {
  const pattern = stringArg(args, "pattern", true)!;
  let regex: RegExp;
  try {
    regex = new RegExp(pattern, args.ignore_case === true ? "i" : "");
  } catch (error) {
    throw new ToolError(`not a regular expression: ${(error as Error).message}`);
  }
  const start = await confine(workspace, stringArg(args, "path", false) ?? ".");
  const matches: string[] = [];
  const searchFile = async (path: string): Promise<void> => {
    const info = await stat(path);
    if (info.size > MAX_SEARCH_FILE_BYTES) return;
    const bytes = await readFile(path);
    if (bytes.includes(0)) return; // binary
    const lines = bytes.toString("utf8").split("\n");
    for (let i = 0; i < lines.length && matches.length < MAX_SEARCH_MATCHES; i++) {
      if (regex.test(lines[i]!))
        matches.push(`${shown(workspace, path)}:${i + 1}: ${lines[i]!.slice(0, 300)}`);
    }
  };
  const walk = async (folder: string): Promise<void> => {
    const list = (await readdir(folder, { withFileTypes: true })).sort((a, b) =>
      a.name.localeCompare(b.name),
    );
    for (const entry of list) {
      if (matches.length >= MAX_SEARCH_MATCHES) return;
      const path = join(folder, entry.name);
      if (entry.isDirectory()) {
        if (!SKIPPED_DIRS.has(entry.name)) await walk(path);
      } else if (entry.isFile()) {
        await searchFile(path);
      }
    }
  };
  if ((await stat(start)).isDirectory()) await walk(start);
  else await searchFile(start);
  if (matches.length === 0) return "no matches";
  return `${matches.join("\n")}${matches.length >= MAX_SEARCH_MATCHES ? `\n[cut at ${MAX_SEARCH_MATCHES} matches]` : ""}`;
}

async function commandTool(ctx: ToolContext, args: Record<string, unknown>): Promise<ToolResult> {
  const command = stringArg(args, "command", true)!;
  const timeoutSecs = Math.min(
    MAX_COMMAND_TIMEOUT_SECS,
    Math.max(1, numberArg(args, "timeout_secs") ?? DEFAULT_COMMAND_TIMEOUT_SECS),
  );
  let output = "";
  let dropped = 0;
  const result = await ctx.launcher.run({
    argv: ["bash", "-c", command],
    env: ctx.env,
    cwd: ctx.workspace,
    timeoutMs: timeoutSecs * 1000,
    signal: ctx.signal,
    killGraceMs: 2000,
    onOutput: (_stream, data) => {
      ctx.alive();
      output += data;
      if (output.length > MAX_COMMAND_OUTPUT_CHARS * 2) {
        dropped += output.length - MAX_COMMAND_OUTPUT_CHARS;
        output = output.slice(-MAX_COMMAND_OUTPUT_CHARS);
      }
    },
  });
  ctx.onCommandEnd?.(result);
  if (output.length > MAX_COMMAND_OUTPUT_CHARS) {
    dropped += output.length - MAX_COMMAND_OUTPUT_CHARS;
    output = output.slice(-MAX_COMMAND_OUTPUT_CHARS);
  }
  const head =
    result.spawnError !== undefined
      ? `could not start: ${result.spawnError}`
      : result.status === "timeout"
        ? `stopped after ${timeoutSecs} s`
        : result.exitCode === null
          ? `killed by ${result.signal ?? "a signal"}`
          : `exit code ${result.exitCode}`;
  const cutNote = dropped > 0 ? `[first ${dropped} characters of output dropped]\n` : "";
  const fatal =
    result.fault ??
    (result.spawnError !== undefined
      ? agentError(
          "AGENT_CRASHED",
          `run_command could not start: ${result.spawnError}`,
          "The runner could not start the agent's command; the message says why and what to change on the runner.",
        )
      : undefined);
  return {
    output: `${head}\n${cutNote}${output}`,
    isError: result.status !== "success",
    ...(fatal && !ctx.signal.aborted ? { fatal } : {}),
  };
}
