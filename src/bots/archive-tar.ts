import { createReadStream } from "node:fs";
import { lstat } from "node:fs/promises";
import { createRequire } from "node:module";
import { join } from "node:path";
import type * as Tar from "tar";
import type { ReadEntry } from "tar";
import { RunyardError } from "../core/errors.js";
import { pathSegments, unlistedEntryProblem } from "./archive-check.js";
import type { ArchiveEntry, ArchiveLimits } from "./types.js";

const load = createRequire(import.meta.url);

/** tar, loaded when an archive is first read: a server that takes no bot archive never needs it. */
const tar = (): typeof Tar => load("tar") as typeof Tar;

function entryType(type: ReadEntry["type"]): ArchiveEntry["type"] {
  switch (type) {
    case "File":
    case "OldFile":
    case "ContiguousFile":
      return "file";
    case "Directory":
      return "directory";
    case "SymbolicLink":
      return "symlink";
    case "Link":
      return "hardlink";
    default:
      return "other";
  }
}

function listed(entry: ReadEntry): ArchiveEntry {
  const item: ArchiveEntry = { path: entry.path, type: entryType(entry.type), size: entry.size ?? 0 };
  if (entry.linkpath) item.linkTarget = entry.linkpath;
  return item;
}

function tarError(archive: string, error: unknown): RunyardError {
  const reason = error instanceof Error ? error.message : String(error);
  return new RunyardError("ARCHIVE_REJECTED", `archive ${archive} is not a valid tar: ${reason}`, {
    cause: error,
  });
}

/**
 * Lists a tar (gzip is detected by node-tar itself) without writing anything. It stops reading
 * once it holds one entry more than `stopAfter`, so a gzip of millions of headers costs little.
 */
export function listTar(archive: string, stopAfter: number): Promise<ArchiveEntry[]> {
  return new Promise((resolve, reject) => {
    const entries: ArchiveEntry[] = [];
    const input = createReadStream(archive);
    let done = false;
    const finish = (error?: unknown) => {
      if (done) return;
      done = true;
      input.destroy();
      if (error === undefined) resolve(entries);
      else reject(tarError(archive, error));
    };
    const parser = new (tar().Parser)({
      strict: true,
      onReadEntry: (entry) => {
        entry.resume();
        // The parser may still hold headers from a chunk already read when listing stopped.
        if (done) return;
        entries.push(listed(entry));
        if (entries.length > stopAfter) finish();
      },
    });
    parser.on("error", finish);
    parser.on("warn", (_code: string, message: string | Error) => finish(message));
    parser.on("end", () => finish());
    input.on("error", finish);
    input.pipe(parser);
  });
}

/**
 * Tar frames each entry's data by its header's size, so an entry cannot carry more bytes than
 * listed; what was written is still compared with the listing, the check a lying zip needs.
 */
async function verifySizes(dest: string, listing: ArchiveEntry[]): Promise<string | null> {
  for (const entry of listing) {
    if (entry.type !== "file") continue;
    const segments = pathSegments(entry.path);
    if (typeof segments === "string" || segments.length === 0) continue;
    const written = await lstat(join(dest, ...segments));
    if (!written.isFile() || written.size !== entry.size) {
      return `archive entry ${JSON.stringify(entry.path)} was written with ${written.size} bytes, not the ${entry.size} listed`;
    }
  }
  return null;
}

/**
 * Extracts a listed and checked tar into `dest` with node-tar (strict, no absolute paths, no
 * owners). Every entry must be the one listed, in order: the file could have changed since.
 */
export function extractTar(
  archive: string,
  dest: string,
  listing: ArchiveEntry[],
  limits: ArchiveLimits,
): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const written: string[] = [];
    let index = 0;
    let failed: RunyardError | null = null;
    const input = createReadStream(archive);
    const unpack = new (tar().Unpack)({
      cwd: dest,
      strict: true,
      preservePaths: false,
      preserveOwner: false,
      noMtime: true,
      // Folders the archive only implies get the same modes as listed ones.
      dmode: 0o700,
      fmode: 0o600,
      maxDepth: limits.maxDepth + 1,
      filter: (_path, entry) => {
        if (!("type" in entry) || failed !== null) return false;
        const got = listed(entry);
        const unlisted = unlistedEntryProblem(listing[index++], got);
        if (unlisted) {
          fail(unlisted);
          return false;
        }
        // Only the executable bit survives: the folder is the bot's, not the uploader's.
        if (entry.mode !== undefined) {
          entry.mode = got.type === "directory" ? 0o700 : entry.mode & 0o111 ? 0o700 : 0o600;
        }
        const segments = pathSegments(got.path);
        if (typeof segments !== "string" && segments.length > 0) written.push(segments.join("/"));
        return true;
      },
    });
    let settled = false;
    function fail(message: string) {
      if (failed !== null) return;
      failed = new RunyardError("ARCHIVE_REJECTED", message);
      input.destroy();
      unpack.abort(failed);
      settle();
    }
    function settle() {
      if (settled) return;
      settled = true;
      if (failed !== null) reject(failed);
      else if (index !== listing.length) {
        reject(new RunyardError("ARCHIVE_REJECTED", `archive ${archive} changed: fewer entries than listed`));
      } else resolve(written);
    }
    unpack.on("error", (error: unknown) => {
      fail(error instanceof Error ? error.message : String(error));
    });
    unpack.on("warn", (_code: string, message: string | Error) => {
      fail(`archive ${archive}: ${message instanceof Error ? message.message : message}`);
    });
    // Unpack emits "end" once every file it opened is written and closed.
    unpack.on("end", () => {
      verifySizes(dest, listing).then(
        (problem) => {
          if (problem !== null) fail(problem);
          else settle();
        },
        (error: unknown) => fail(error instanceof Error ? error.message : String(error)),
      );
    });
    input.on("error", (error) => fail(error.message));
    input.pipe(unpack);
  });
}
