import { RunyardError } from "../core/errors.js";
import type { ArchiveEntry, ArchiveLimits } from "./types.js";

/** The defaults of the avtomatika-bot's uploads; config keys may override them later. */
export const defaultArchiveLimits: ArchiveLimits = {
  maxEntries: 10_000,
  maxTotalBytes: 200 * 1024 * 1024,
  maxRatio: 100,
  maxDepth: 32,
};

export type ArchiveFormat = "tar" | "tar.gz" | "zip";

/** An archive as listed, nothing extracted yet. */
export interface ArchiveListing {
  format: ArchiveFormat;
  entries: ArchiveEntry[];
  /** The archive file's own size, the denominator of the ratio. */
  compressedBytes: number;
}

/**
 * Below this many uncompressed bytes the ratio is not checked: a few KiB of zeros compress
 * a thousandfold yet harm nobody, while a bomb is far larger than this.
 */
const ratioFloorBytes = 1024 * 1024;
const maxSegmentBytes = 255;

/**
 * The path's segments once `\` is read as `/` and empty and `.` segments are dropped, or why
 * the path is refused (absolute, `..`, NUL, over-long segment, empty).
 */
export function pathSegments(raw: string): string[] | string {
  if (raw.includes("\0")) return "its name holds a NUL byte";
  const path = raw.replace(/\\/g, "/");
  if (path.startsWith("/") || /^[A-Za-z]:/.test(path)) return "its path is absolute";
  const segments = path.split("/").filter((s) => s !== "" && s !== ".");
  if (segments.includes("..")) return "its path holds a `..` segment";
  for (const segment of segments) {
    if (Buffer.byteLength(segment, "utf8") > maxSegmentBytes) {
      return `a segment of its path is longer than ${maxSegmentBytes} bytes`;
    }
  }
  return segments;
}

function reject(entry: ArchiveEntry, why: string): never {
  return rejectArchive(`archive entry ${JSON.stringify(entry.path)} is refused: ${why}`);
}

function rejectArchive(message: string): never {
  throw new RunyardError("ARCHIVE_REJECTED", message, { details: { message } });
}

/**
 * Resolves a symlink's target against its own folder, refusing a target that leaves the root
 * or passes through another link of the archive (whose real place lexical resolution cannot know).
 */
function symlinkProblem(folder: string[], target: string, links: Set<string>): string | null {
  if (target === "" || target.includes("\0")) return "its link target is empty or holds a NUL byte";
  const normalised = target.replace(/\\/g, "/");
  if (normalised.startsWith("/") || /^[A-Za-z]:/.test(normalised)) {
    return `it links to the absolute path ${JSON.stringify(target)}`;
  }
  const resolved = [...folder];
  for (const segment of normalised.split("/")) {
    if (segment === "" || segment === ".") continue;
    if (links.has(resolved.join("/")) && resolved.length > 0) {
      return `its link target ${JSON.stringify(target)} passes through another link`;
    }
    if (segment === "..") {
      if (resolved.length === 0) return `it links outside the archive's folder (${JSON.stringify(target)})`;
      resolved.pop();
    } else {
      resolved.push(segment);
    }
  }
  return null;
}

/** Why an entry met while extracting is not the one listed at its place (the archive changed since). */
export function unlistedEntryProblem(
  expected: ArchiveEntry | undefined,
  got: ArchiveEntry,
): string | undefined {
  const same =
    expected?.path === got.path &&
    expected.type === got.type &&
    expected.size === got.size &&
    expected.linkTarget === got.linkTarget;
  return same
    ? undefined
    : `archive entry ${JSON.stringify(got.path)} differs from the listing: the archive changed`;
}

/**
 * Throws ARCHIVE_REJECTED naming the first entry that may not be extracted, and why; returns
 * when every entry is safe and the archive is within the limits. Pure: it reads only the listing.
 */
export function checkArchive(listing: ArchiveListing, limits: ArchiveLimits): void {
  const links = new Set<string>();
  for (const entry of listing.entries) {
    if (entry.type !== "symlink") continue;
    const segments = pathSegments(entry.path);
    if (typeof segments !== "string") links.add(segments.join("/"));
  }
  const seen = new Map<string, ArchiveEntry["type"]>();
  let total = 0;
  listing.entries.forEach((entry, index) => {
    if (index >= limits.maxEntries) reject(entry, `the archive holds more than ${limits.maxEntries} entries`);
    if (entry.path === "") reject(entry, "its name is empty");
    const segments = pathSegments(entry.path);
    if (typeof segments === "string") reject(entry, segments);
    if (segments.length === 0 && entry.type !== "directory") reject(entry, "its name is empty");
    if (segments.length > limits.maxDepth)
      reject(entry, `its path is deeper than ${limits.maxDepth} folders`);
    const key = segments.join("/");
    for (let depth = 1; depth < segments.length; depth++) {
      if (links.has(segments.slice(0, depth).join("/"))) reject(entry, "it would be written through a link");
    }
    const earlier = seen.get(key);
    if (earlier !== undefined && !(earlier === "directory" && entry.type === "directory")) {
      reject(entry, "an earlier entry has the same path");
    }
    switch (entry.type) {
      case "file":
      case "directory":
        break;
      case "symlink": {
        const problem = symlinkProblem(segments.slice(0, -1), entry.linkTarget ?? "", links);
        if (problem !== null) reject(entry, problem);
        break;
      }
      case "hardlink": {
        // A hardlink's target is a path from the archive's root, not from the link's folder.
        const target = pathSegments(entry.linkTarget ?? "");
        if (typeof target === "string") reject(entry, `its hardlink target ${target.replace("its ", "")}`);
        if (seen.get(target.join("/")) !== "file") {
          reject(
            entry,
            `its hardlink target ${JSON.stringify(entry.linkTarget)} is not an earlier regular file of the archive`,
          );
        }
        break;
      }
      case "other":
        reject(entry, "it is a device, FIFO or other special file");
    }
    seen.set(key, entry.type);
    if (!Number.isSafeInteger(entry.size) || entry.size < 0) reject(entry, "its size is not a byte count");
    total += entry.size;
    if (total > limits.maxTotalBytes) {
      reject(entry, `the archive expands past ${limits.maxTotalBytes} bytes`);
    }
    if (total > ratioFloorBytes && total > limits.maxRatio * Math.max(listing.compressedBytes, 1)) {
      reject(
        entry,
        `the archive expands more than ${limits.maxRatio} times its ${listing.compressedBytes} bytes`,
      );
    }
  });
}
