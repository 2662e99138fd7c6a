import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { list as listTar } from "tar";
import { describe, expect, it } from "vitest";
import { ignored, ignoreRules, packBotFolder } from "./bot-context.js";

describe(".dockerignore as Docker reads it", () => {
  const rules = ignoreRules(
    "# comment\n\nnode_modules\n*.log\n/secret.txt\n**/*.pyc\ndocs/**\n!docs/keep.md\ntmp?/\n",
  );

  it.each([
    ["node_modules", true],
    ["node_modules/aiogram/index.js", true],
    ["error.log", true],
    ["logs/error.log", false],
    ["secret.txt", true],
    ["sub/secret.txt", false],
    ["a/b/c.pyc", true],
    ["c.pyc", true],
    ["docs/guide.md", true],
    ["docs/keep.md", false],
    ["tmp1/x", true],
    ["tmp12/x", false],
    ["bot.py", false],
  ])("%s left out: %s", (path, out) => {
    expect(ignored(rules, path)).toBe(out);
  });
});

describe("packing a --custom folder", () => {
  it("sends the Dockerfile and .dockerignore always, and nothing the .dockerignore names", async () => {
    const dir = mkdtempSync(join(tmpdir(), "runyard-pack-"));
    writeFileSync(join(dir, "Dockerfile"), "FROM scratch\n");
    writeFileSync(join(dir, ".dockerignore"), "Dockerfile\n.dockerignore\n.git\n*.env\ncache\n!cache/keep\n");
    writeFileSync(join(dir, "bot.py"), "print(1)\n");
    writeFileSync(join(dir, "prod.env"), "TOKEN=x\n");
    mkdirSync(join(dir, ".git"));
    writeFileSync(join(dir, ".git", "config"), "[core]\n");
    mkdirSync(join(dir, "cache"));
    writeFileSync(join(dir, "cache", "big"), "x");
    writeFileSync(join(dir, "cache", "keep"), "y");
    const archive = join(mkdtempSync(join(tmpdir(), "runyard-packed-")), "context.tar.gz");
    writeFileSync(archive, await packBotFolder(dir));
    const files: string[] = [];
    await listTar({ file: archive, onReadEntry: (entry) => entry.type === "File" && files.push(entry.path) });
    expect(files.sort()).toEqual([".dockerignore", "Dockerfile", "bot.py", "cache/keep"]);
  });

  it("refuses a folder without a Dockerfile, with a hint toward --simple", async () => {
    const dir = mkdtempSync(join(tmpdir(), "runyard-pack-"));
    await expect(packBotFolder(dir)).rejects.toMatchObject({
      code: "USAGE",
      hint: expect.stringContaining("--simple"),
    });
  });
});
