import { describe, expect, it } from "vitest";
import { RunyardError } from "../core/errors.js";
import { type ArchiveListing, checkArchive, defaultArchiveLimits } from "./archive-check.js";
import type { ArchiveEntry, ArchiveLimits } from "./types.js";

function listing(entries: ArchiveEntry[], compressedBytes = 1_000_000): ArchiveListing {
  return { format: "tar", entries, compressedBytes };
}

const file = (path: string, size = 10): ArchiveEntry => ({ path, type: "file", size });
const dir = (path: string): ArchiveEntry => ({ path, type: "directory", size: 0 });
const link = (path: string, linkTarget: string): ArchiveEntry => ({
  path,
  type: "symlink",
  size: 0,
  linkTarget,
});
const hardlink = (path: string, linkTarget: string): ArchiveEntry => ({
  path,
  type: "hardlink",
  size: 0,
  linkTarget,
});

function rejection(
  entries: ArchiveEntry[],
  limits: ArchiveLimits = defaultArchiveLimits,
  compressed?: number,
) {
  try {
    checkArchive(listing(entries, compressed), limits);
  } catch (error) {
    expect(error).toBeInstanceOf(RunyardError);
    expect((error as RunyardError).code).toBe("ARCHIVE_REJECTED");
    return (error as RunyardError).message;
  }
  throw new Error("the archive was accepted");
}

describe("checkArchive", () => {
  it("accepts files, folders and links that stay inside", () => {
    expect(() =>
      checkArchive(
        listing([
          dir("./"),
          dir("app/"),
          file("app/main.py"),
          link("app/current", "main.py"),
          link("app/lib/up", "../main.py"),
          hardlink("app/copy.py", "app/main.py"),
        ]),
        defaultArchiveLimits,
      ),
    ).not.toThrow();
  });

  it("names an absolute path", () => {
    expect(rejection([file("ok"), file("/etc/evil")])).toMatch(/"\/etc\/evil".*absolute/);
  });

  it("names a Windows drive path as absolute", () => {
    expect(rejection([file("C:\\evil")])).toMatch(/absolute/);
  });

  it("names a `..` segment, also written with backslashes", () => {
    expect(rejection([file("../../evil")])).toMatch(/"\.\.\/\.\.\/evil".*`\.\.`/);
    expect(rejection([file("a\\..\\..\\evil")])).toMatch(/`\.\.`/);
  });

  it("names a symlink pointing above the archive's folder, or to an absolute path", () => {
    expect(rejection([link("link", "../../etc")])).toMatch(/"link".*outside/);
    expect(rejection([link("a/b/link", "../../../x")])).toMatch(/"a\/b\/link".*outside/);
    expect(rejection([link("link", "/etc")])).toMatch(/"link".*absolute/);
  });

  it("names an entry written through a link, whatever the order", () => {
    expect(rejection([link("link", "sub"), file("link/x")])).toMatch(/"link\/x".*through a link/);
    expect(rejection([file("link/x"), link("link", "sub")])).toMatch(/"link\/x".*through a link/);
  });

  it("names a symlink whose target passes through another link", () => {
    expect(rejection([link("d", "."), link("a", "d/..")])).toMatch(/"a".*passes through another link/);
  });

  it("names a hardlink whose target is outside, absolute or not an earlier file", () => {
    expect(rejection([hardlink("h", "/etc/passwd")])).toMatch(/"h".*absolute/);
    expect(rejection([hardlink("h", "../x")])).toMatch(/"h".*`\.\.`/);
    expect(rejection([hardlink("h", "missing")])).toMatch(/"h".*not an earlier regular file/);
    expect(rejection([dir("d"), hardlink("h", "d")])).toMatch(/"h".*not an earlier regular file/);
  });

  it("names a device, FIFO or other special entry", () => {
    expect(rejection([{ path: "dev/sda", type: "other", size: 0 }])).toMatch(/"dev\/sda".*device/);
  });

  it("names empty names, NUL bytes and over-long segments", () => {
    expect(rejection([file("")])).toMatch(/empty/);
    expect(rejection([file("./")])).toMatch(/empty/);
    expect(rejection([file("a\0b")])).toMatch(/NUL/);
    expect(rejection([file(`a/${"x".repeat(256)}`)])).toMatch(/longer than 255 bytes/);
  });

  it("names a path that appears twice, unless both are folders", () => {
    expect(rejection([file("a"), link("a", "b")])).toMatch(/"a".*same path/);
    expect(() => checkArchive(listing([dir("a/"), dir("a")]), defaultArchiveLimits)).not.toThrow();
  });

  it("names the first entry over the entry cap", () => {
    const limits = { ...defaultArchiveLimits, maxEntries: 3 };
    expect(rejection([file("1"), file("2"), file("3"), file("4"), file("5")], limits)).toMatch(
      /"4".*more than 3 entries/,
    );
  });

  it("names the entry that takes the total past its cap", () => {
    const limits = { ...defaultArchiveLimits, maxTotalBytes: 100 };
    expect(rejection([file("a", 60), file("b", 60)], limits)).toMatch(/"b".*past 100 bytes/);
  });

  it("names the entry that takes the ratio past its cap, but leaves tiny archives alone", () => {
    const big = 50 * 1024 * 1024;
    expect(rejection([file("zeros", big)], defaultArchiveLimits, 50_000)).toMatch(
      /"zeros".*more than 100 times/,
    );
    expect(() => checkArchive(listing([file("small", 100_000)], 100), defaultArchiveLimits)).not.toThrow();
  });

  it("names a path deeper than the depth cap", () => {
    const limits = { ...defaultArchiveLimits, maxDepth: 3 };
    expect(() => checkArchive(listing([file("a/b/c")]), limits)).not.toThrow();
    expect(rejection([file("a/b/c/d")], limits)).toMatch(/"a\/b\/c\/d".*deeper than 3/);
  });
});
