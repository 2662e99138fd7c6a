import { mkdir, open, rm, stat } from "node:fs/promises";
import { RunyardError } from "../core/errors.js";
import {
  type ArchiveFormat,
  type ArchiveListing,
  checkArchive,
  defaultArchiveLimits,
} from "./archive-check.js";
import { extractTar, listTar } from "./archive-tar.js";
import { extractZip, listZip } from "./archive-zip.js";
import type { ArchiveLimits } from "./types.js";

export { checkArchive, defaultArchiveLimits } from "./archive-check.js";

/** The format from the first bytes, never from the name: an upload's name is the uploader's to choose. */
async function detectFormat(path: string): Promise<ArchiveFormat> {
  const head = Buffer.alloc(512);
  const file = await open(path, "r");
  let read: number;
  try {
    ({ bytesRead: read } = await file.read(head, 0, head.length, 0));
  } finally {
    await file.close();
  }
  if (read >= 2 && head[0] === 0x1f && head[1] === 0x8b) return "tar.gz";
  if (read >= 4 && head.subarray(0, 4).equals(Buffer.from("PK\x03\x04", "latin1"))) return "zip";
  if (read >= 262 && head.subarray(257, 262).toString("latin1") === "ustar") return "tar";
  throw new RunyardError(
    "ARCHIVE_REJECTED",
    `${path} is not a tar, tar.gz or zip archive (by its first bytes)`,
  );
}

/**
 * Lists every entry of the archive without writing anything. Listing stops one entry past
 * `limits.maxEntries`, enough for the check to name the first entry over the cap.
 */
export async function listArchive(
  path: string,
  limits: ArchiveLimits = defaultArchiveLimits,
): Promise<ArchiveListing> {
  const format = await detectFormat(path);
  const compressedBytes = (await stat(path)).size;
  const entries =
    format === "zip" ? await listZip(path, limits.maxEntries) : await listTar(path, limits.maxEntries);
  return { format, entries, compressedBytes };
}

/**
 * Lists and checks the archive, then extracts it into `dest` (created 0700, and it must not
 * exist yet). One bad entry rejects the whole archive before a byte is written; an archive that
 * turns out to differ from its listing while extracting leaves no `dest` behind. Returns the
 * extracted paths, relative to `dest`.
 */
export async function extractArchive(
  path: string,
  dest: string,
  limits: ArchiveLimits = defaultArchiveLimits,
): Promise<string[]> {
  const listing = await listArchive(path, limits);
  checkArchive(listing, limits);
  await mkdir(dest, { mode: 0o700 });
  try {
    return listing.format === "zip"
      ? await extractZip(path, dest, listing.entries)
      : await extractTar(path, dest, listing.entries, limits);
  } catch (error) {
    await rm(dest, { recursive: true, force: true });
    throw error;
  }
}
