import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { fdPath, openHostFolder } from "./host-folder.js";

const made: string[] = [];
afterEach(() => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function folder(): string {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), "runyard-host-folder-")));
  made.push(dir);
  return dir;
}

describe("openHostFolder", () => {
  it("makes each missing part (0700) and opens the folder itself", async () => {
    const root = folder();
    const handle = await openHostFolder(join(root, "a", "b"));
    try {
      writeFileSync(`${fdPath(handle)}/file`, "x");
    } finally {
      await handle.close();
    }
    expect(readFileSync(join(root, "a", "b", "file"), "utf8")).toBe("x");
    expect(statSync(join(root, "a")).mode & 0o777).toBe(0o700);
  });

  it("follows a link that leads where the refusal allows (an operator's /var/run)", async () => {
    const root = folder();
    mkdirSync(join(root, "real"));
    symlinkSync(join(root, "real"), join(root, "link"));
    const handle = await openHostFolder(join(root, "link", "logs"), () => undefined);
    await handle.close();
    expect(readdirSync(join(root, "real"))).toEqual(["logs"]);
  });

  it("refuses a part whose real place is refused before making anything inside it", async () => {
    const root = folder();
    const hidden = join(root, "hidden");
    mkdirSync(hidden);
    symlinkSync(hidden, join(root, "link"));
    const refusal = (real: string) => (real.startsWith(hidden) ? `${real} is hidden` : undefined);
    await expect(openHostFolder(join(root, "link", "a", "b"), refusal)).rejects.toThrow(
      `${hidden} is hidden`,
    );
    expect(readdirSync(hidden)).toEqual([]);
  });

  it("writes into the folder it opened after the folder was swapped for a link", async () => {
    const root = folder();
    const victim = join(root, "victim");
    mkdirSync(victim);
    const handle = await openHostFolder(join(root, "logs"));
    try {
      renameSync(join(root, "logs"), join(root, "moved"));
      symlinkSync(victim, join(root, "logs"));
      writeFileSync(`${fdPath(handle)}/file`, "x");
    } finally {
      await handle.close();
    }
    expect(readdirSync(victim)).toEqual([]);
    expect(existsSync(join(root, "moved", "file"))).toBe(true);
  });
});
