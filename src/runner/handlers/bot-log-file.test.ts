import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { BotLogFile } from "./bot-log-file.js";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function logFile(maxBytes: number): BotLogFile {
  const dir = mkdtempSync(join(tmpdir(), "runyard-bot-log-"));
  dirs.push(dir);
  return new BotLogFile(dir, "bot_1", maxBytes);
}

describe("a bot's kept log", () => {
  it("reads whole, oldest first, while it fits what a download holds", () => {
    const file = logFile(1000);
    for (let i = 0; i < 30; i++) file.write("T", "stdout", `line ${i}`);
    const text = file.read(10_000).toString();
    expect(text.startsWith("T stdout line ")).toBe(true);
    expect(text.endsWith("T stdout line 29\n")).toBe(true);
    file.close();
  });

  it("reads its newest part past what a download holds, from a whole line, saying older output was left out", () => {
    const file = logFile(100_000);
    for (let i = 0; i < 2000; i++) file.write("T", "stdout", `line ${i}`);
    const lines = file.read(1000).toString().split("\n");
    expect(lines[0]).toMatch(/ runyard older output left out: a download holds the newest /);
    expect(lines[1]).toMatch(/^T stdout line \d+$/);
    expect(lines.at(-2)).toBe("T stdout line 1999");
    expect(lines.slice(1).join("\n").length).toBeLessThanOrEqual(1000);
    file.close();
  });
});
