/**
 * Bots (docs/bots.md; the avtomatika-bot CLI's and the `POST /jobs` orchestrator API's):
 * users' long-running programs in hardened containers. The contracts between the archive checks,
 * the image builds and the container lifecycle.
 */

/**
 * What an archive may hold, checked before anything is extracted (the avtomatika-bot's uploads:
 * path-traversal-safe).
 */
export interface ArchiveLimits {
  /** Entries of any kind. */
  maxEntries: number;
  /** Sum of the entries' uncompressed sizes, in bytes. */
  maxTotalBytes: number;
  /** Uncompressed over compressed size, for the whole archive (a zip bomb is far above it). */
  maxRatio: number;
  /** Folder depth of any entry's path. */
  maxDepth: number;
}

/** One entry as listed from the archive, before extraction. */
export interface ArchiveEntry {
  /** The path as stored (never trusted). */
  path: string;
  type: "file" | "directory" | "symlink" | "hardlink" | "other";
  size: number;
  /** For links: the target as stored. */
  linkTarget?: string;
}

/** Who a container belongs to, recorded in its labels (`runyard.*`) so it can be reconciled. */
export interface BotOwnership {
  botId: string;
  tenantId: string | null;
  owner: string;
  /** ISO time after which the bot ends `timeout` (its lifetime, 24 h by default). */
  expiresAt: string;
}

/** The avtomatika-bot states, plus `removed` (defined in core: the store keeps them too). */
export type { BotState } from "../core/bot-states.js";
