import { createWriteStream } from "node:fs";
import { mkdir, symlink } from "node:fs/promises";
import { join } from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import yauzl from "yauzl";
import { RunyardError } from "../core/errors.js";
import { pathSegments, unlistedEntryProblem } from "./archive-check.js";
import type { ArchiveEntry } from "./types.js";

/** A link target longer than this is no path anyone needs; reading it whole stays cheap. */
const maxLinkTargetBytes = 4096;
const unixMadeBy = 3;

function zipError(archive: string, error: unknown): RunyardError {
  if (error instanceof RunyardError) return error;
  const reason = error instanceof Error ? error.message : String(error);
  return new RunyardError("ARCHIVE_REJECTED", `archive ${archive} is not a valid zip: ${reason}`, {
    cause: error,
  });
}

/**
 * Opens with names left undecoded: yauzl would otherwise refuse `../x` itself, before the check
 * could name the entry and say why.
 */
function openZip(archive: string): Promise<yauzl.ZipFile> {
  return yauzl.openPromise(archive, {
    lazyEntries: true,
    decodeStrings: false,
    validateEntrySizes: true,
    autoClose: true,
  });
}

function entryName(entry: yauzl.Entry): string {
  return yauzl.getFileNameLowLevel(entry.generalPurposeBitFlag, entry.fileNameRaw, entry.extraFields, false);
}

/** The Unix mode a zip made on Unix keeps in the high half of its external attributes, else 0. */
function unixMode(entry: yauzl.Entry): number {
  return entry.versionMadeBy >> 8 === unixMadeBy ? entry.externalFileAttributes >>> 16 : 0;
}

function entryType(name: string, mode: number): ArchiveEntry["type"] {
  const kind = mode & 0o170000;
  if (kind === 0o120000) return "symlink";
  if (kind === 0o040000 || name.endsWith("/")) return "directory";
  if (kind === 0 || kind === 0o100000) return "file";
  return "other";
}

async function readAll(stream: NodeJS.ReadableStream, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of stream) {
    const buffer = Buffer.from(chunk as Buffer);
    bytes += buffer.length;
    if (bytes > limit) throw new Error(`a link target is longer than ${limit} bytes`);
    chunks.push(buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}

async function listedEntry(zip: yauzl.ZipFile, entry: yauzl.Entry): Promise<ArchiveEntry> {
  const path = entryName(entry);
  if (entry.isEncrypted()) {
    throw new RunyardError(
      "ARCHIVE_REJECTED",
      `archive entry ${JSON.stringify(path)} is refused: it is encrypted`,
    );
  }
  const type = entryType(path, unixMode(entry));
  const item: ArchiveEntry = { path, type, size: entry.uncompressedSize };
  if (type === "symlink") {
    item.linkTarget = await readAll(await zip.openReadStreamPromise(entry), maxLinkTargetBytes);
  }
  return item;
}

/** Lists a zip from its central directory (and its symlinks' targets), writing nothing. */
export async function listZip(archive: string, stopAfter: number): Promise<ArchiveEntry[]> {
  const entries: ArchiveEntry[] = [];
  let zip: yauzl.ZipFile | undefined;
  try {
    zip = await openZip(archive);
    for await (const entry of zip.eachEntry()) {
      entries.push(await listedEntry(zip, entry));
      if (entries.length > stopAfter) break;
    }
  } catch (error) {
    throw zipError(archive, error);
  } finally {
    zip?.close();
  }
  return entries;
}

/** Passes bytes through, failing once more arrive than the listing promised. */
function byteCap(path: string, size: number): Transform {
  let bytes = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      bytes += chunk.length;
      if (bytes > size) {
        callback(
          new RunyardError(
            "ARCHIVE_REJECTED",
            `archive entry ${JSON.stringify(path)} holds more bytes than listed`,
          ),
        );
      } else callback(null, chunk);
    },
  });
}

/**
 * Extracts a listed and checked zip into `dest`, streamed: every entry must be the one listed,
 * files are created new (`wx`: never through an existing file or link) with only the executable bit.
 */
export async function extractZip(archive: string, dest: string, listing: ArchiveEntry[]): Promise<string[]> {
  const written: string[] = [];
  let zip: yauzl.ZipFile | undefined;
  let index = 0;
  try {
    zip = await openZip(archive);
    for await (const entry of zip.eachEntry()) {
      const got = await listedEntry(zip, entry);
      const unlisted = unlistedEntryProblem(listing[index++], got);
      if (unlisted) throw new RunyardError("ARCHIVE_REJECTED", unlisted);
      const segments = pathSegments(got.path);
      if (typeof segments === "string") {
        throw new RunyardError(
          "ARCHIVE_REJECTED",
          `archive entry ${JSON.stringify(got.path)} is refused: ${segments}`,
        );
      }
      if (segments.length === 0) continue;
      const target = join(dest, ...segments);
      const parent = join(dest, ...segments.slice(0, -1));
      if (got.type === "directory") {
        await mkdir(target, { recursive: true, mode: 0o700 });
      } else if (got.type === "symlink") {
        await mkdir(parent, { recursive: true, mode: 0o700 });
        await symlink(got.linkTarget ?? "", target);
      } else if (got.type === "file") {
        await mkdir(parent, { recursive: true, mode: 0o700 });
        const mode = unixMode(entry) & 0o111 ? 0o700 : 0o600;
        try {
          await pipeline(
            await zip.openReadStreamPromise(entry),
            byteCap(got.path, got.size),
            createWriteStream(target, { flags: "wx", mode }),
          );
        } catch (error) {
          if (error instanceof RunyardError) throw error;
          const reason = error instanceof Error ? error.message : String(error);
          throw new RunyardError(
            "ARCHIVE_REJECTED",
            `archive entry ${JSON.stringify(got.path)} failed while extracting: ${reason}`,
            {
              cause: error,
            },
          );
        }
      } else {
        throw new RunyardError(
          "ARCHIVE_REJECTED",
          `archive entry ${JSON.stringify(got.path)} is refused: not a file, folder or link`,
        );
      }
      written.push(segments.join("/"));
    }
  } catch (error) {
    throw zipError(archive, error);
  } finally {
    zip?.close();
  }
  if (index !== listing.length) {
    throw new RunyardError("ARCHIVE_REJECTED", `archive ${archive} changed: fewer entries than listed`);
  }
  return written;
}
