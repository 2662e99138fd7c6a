import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { ProcessLauncher } from "../exec/types.js";
import { confine, runTool, type ToolContext } from "./openai-tools.js";

let root: string;
let ws: string;
/** The file tools never start a process; run_command is tested with a real launcher under test/agents. */
const noLauncher: ProcessLauncher = {
  run: () => Promise.reject(new Error("no process in unit tests")),
  close: async () => {},
};
const ctx = (): ToolContext => ({
  workspace: ws,
  launcher: noLauncher,
  signal: new AbortController().signal,
  env: {},
  alive: () => {},
});

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "runyard-openai-tools-"));
  ws = join(root, "ws");
  mkdirSync(join(ws, "src"), { recursive: true });
  writeFileSync(join(ws, "src", "a.ts"), "const a = 1;\nexport const answer = 42;\n");
  writeFileSync(join(ws, "README.md"), "# Title\nanswer here\n");
  writeFileSync(join(root, "secret.txt"), "top secret");
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

describe("openai tools: confinement", () => {
  it("accepts paths inside the workspace, relative or absolute, existing or not", async () => {
    expect(await confine(ws, "src/a.ts")).toBe(join(ws, "src", "a.ts"));
    expect(await confine(ws, join(ws, "new", "deep", "file.txt"))).toBe(join(ws, "new", "deep", "file.txt"));
    expect(await confine(ws, ".")).toBe(ws);
  });

  it("refuses .., absolute paths outside, and symlinks that lead out", async () => {
    symlinkSync(join(root, "secret.txt"), join(ws, "link.txt"));
    symlinkSync(root, join(ws, "up"));
    symlinkSync(join(root, "missing"), join(ws, "dangling"));
    await expect(confine(ws, "../secret.txt")).rejects.toThrow("may not contain ..");
    await expect(confine(ws, "src/../../secret.txt")).rejects.toThrow("may not contain ..");
    await expect(confine(ws, join(root, "secret.txt"))).rejects.toThrow("outside the workspace");
    await expect(confine(ws, "/etc/passwd")).rejects.toThrow("outside the workspace");
    await expect(confine(ws, "link.txt")).rejects.toThrow("symlink");
    await expect(confine(ws, "up/secret.txt")).rejects.toThrow("symlink");
    await expect(confine(ws, "up/new-file.txt")).rejects.toThrow("symlink");
    await expect(confine(ws, "dangling")).rejects.toThrow("symlink to nowhere");
  });

  it("writes nothing through a symlink out of the workspace", async () => {
    symlinkSync(join(root, "secret.txt"), join(ws, "link.txt"));
    const result = await runTool("write_file", JSON.stringify({ path: "link.txt", content: "pwned" }), ctx());
    expect(result.isError).toBe(true);
    expect(readFileSync(join(root, "secret.txt"), "utf8")).toBe("top secret");
  });
});

describe("openai tools", () => {
  it("reads a file whole or by lines", async () => {
    expect(await runTool("read_file", '{"path":"src/a.ts"}', ctx())).toEqual({
      output: "const a = 1;\nexport const answer = 42;\n",
      isError: false,
    });
    expect((await runTool("read_file", '{"path":"src/a.ts","offset":2,"limit":1}', ctx())).output).toBe(
      "export const answer = 42;",
    );
  });

  it("writes a file, creating its folders", async () => {
    const result = await runTool("write_file", '{"path":"docs/new/x.md","content":"hi"}', ctx());
    expect(result).toEqual({ output: "wrote 2 bytes to docs/new/x.md", isError: false });
    expect(readFileSync(join(ws, "docs", "new", "x.md"), "utf8")).toBe("hi");
  });

  it("lists a folder, recursively on request, skipping .git", async () => {
    mkdirSync(join(ws, ".git"));
    writeFileSync(join(ws, ".git", "HEAD"), "ref");
    expect((await runTool("list_files", "{}", ctx())).output).toBe(".git/\nREADME.md\nsrc/");
    expect((await runTool("list_files", '{"recursive":true}', ctx())).output).toBe(
      ".git/\nREADME.md\nsrc/\nsrc/a.ts",
    );
  });

  it("searches text files with a regular expression", async () => {
    expect((await runTool("search", '{"pattern":"answer"}', ctx())).output).toBe(
      "README.md:2: answer here\nsrc/a.ts:2: export const answer = 42;",
    );
    expect((await runTool("search", '{"pattern":"TITLE","ignore_case":true}', ctx())).output).toBe(
      "README.md:1: # Title",
    );
    expect(await runTool("search", '{"pattern":"("}', ctx())).toMatchObject({ isError: true });
  });

  it("answers bad calls with an error the model can read", async () => {
    expect(await runTool("read_file", "not json", ctx())).toMatchObject({ isError: true });
    expect(await runTool("read_file", "{}", ctx())).toEqual({
      output: "error: missing argument path",
      isError: true,
    });
    expect(await runTool("read_file", '{"path":"nope.txt"}', ctx())).toEqual({
      output: "error: no such file or folder",
      isError: true,
    });
    expect(await runTool("delete_everything", "{}", ctx())).toEqual({
      output: "error: no tool named delete_everything",
      isError: true,
    });
  });
});
