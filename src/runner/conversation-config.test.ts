import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { conversationConfigHome } from "./conversation-config.js";

const made: string[] = [];
const folder = (): string => {
  const dir = mkdtempSync(join(tmpdir(), "runyard-conversation-config-"));
  made.push(dir);
  return dir;
};
const mode = (path: string): number => statSync(path).mode & 0o777;

afterEach(() => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe("OpenCode's config folder for a turn whose $HOME is not the user's", () => {
  it("copies the user's opencode folder without node_modules, read-only, so OpenCode installs nothing into it", async () => {
    const user = folder();
    mkdirSync(join(user, ".config", "opencode", "node_modules", "big"), { recursive: true });
    writeFileSync(join(user, ".config", "opencode", "opencode.json"), '{"model":"corp/coder"}');
    const home = await conversationConfigHome(folder(), { HOME: user });
    const copy = join(home, "opencode");
    expect(readFileSync(join(copy, "opencode.json"), "utf8")).toBe('{"model":"corp/coder"}');
    expect(() => statSync(join(copy, "node_modules"))).toThrow();
    expect(mode(copy)).toBe(0o555);
  });

  it("makes an empty read-only folder where the user has none", async () => {
    const home = await conversationConfigHome(folder(), { HOME: folder() });
    expect(mode(join(home, "opencode"))).toBe(0o555);
  });

  it("lays the copy anew each turn, over the last turn's read-only one and what that turn wrote in it", async () => {
    const user = folder();
    const state = folder();
    mkdirSync(join(user, ".config", "opencode"), { recursive: true });
    writeFileSync(join(user, ".config", "opencode", "opencode.json"), "first");
    const home = await conversationConfigHome(state, { HOME: user });
    const copy = join(home, "opencode");
    // What a turn could leave: a folder of its own in the copy (its subfolders stay writable).
    mkdirSync(join(copy, "agent"), { recursive: true });
    writeFileSync(join(user, ".config", "opencode", "opencode.json"), "second");
    await conversationConfigHome(state, { HOME: user });
    expect(readFileSync(join(copy, "opencode.json"), "utf8")).toBe("second");
    expect(() => statSync(join(copy, "agent"))).toThrow();
    expect(mode(copy)).toBe(0o555);
  });

  it("never changes the mode of a folder a turn linked in the copy's place", async () => {
    const state = folder();
    const home = await conversationConfigHome(state, { HOME: folder() });
    const elsewhere = folder();
    const before = mode(elsewhere);
    rmSync(join(home, "opencode"), { recursive: true, force: true });
    symlinkSync(elsewhere, join(home, "opencode"));
    await conversationConfigHome(state, { HOME: folder() });
    expect(mode(elsewhere)).toBe(before);
    expect(mode(join(home, "opencode"))).toBe(0o555);
  });
});
