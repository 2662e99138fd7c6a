import { createHash } from "node:crypto";
import type { Selectable } from "kysely";
import { RunyardError } from "../core/errors.js";
import { int, isoTime } from "./columns.js";
import type { StoreContext } from "./dialect.js";
import type { ArtifactsTable } from "./schema.js";

/** A stored artifact of a run, without its content (`artifacts.list`). */
export type ArtifactInfo = Omit<Selectable<ArtifactsTable>, "run_id" | "content" | "size"> & {
  /** Bytes of the content as UTF-8. */
  size: number;
};

/** An artifact with its content (`artifacts.get`). */
export interface Artifact extends ArtifactInfo {
  /** UTF-8 text: agent artifacts are diffs, JSONL transcripts, test output and logs. */
  content: string;
}

/** What `artifacts.put` takes; size, hash and time are the store's. */
export interface NewArtifact {
  run_id: string;
  name: string;
  job_id?: string | null;
  content_type: string;
  content: string;
}

/** In `u` mode a surrogate pair is one code point: only a lone surrogate matches. */
const loneSurrogate = /\p{Cs}/u;

const infoColumns = ["name", "size", "content_type", "sha256", "job_id", "created_at"] as const;

function toArtifactInfo(row: Pick<Selectable<ArtifactsTable>, (typeof infoColumns)[number]>): ArtifactInfo {
  return { ...row, size: int(row.size) };
}

/** The artifacts of runs (diffs, transcripts, test output), sealed at rest. */
export interface ArtifactsRepo {
  /**
   * Stores an artifact of a run, sealed, replacing the one of the same name (an agent turn may
   * rewrite its transcript). NOT_FOUND for an unknown run; INVALID_INPUT for content that is not
   * well-formed Unicode text (a lone surrogate cannot be stored as UTF-8).
   */
  put(input: NewArtifact): Promise<ArtifactInfo>;
  /** A run's artifacts by name, without content; empty for an unknown run. */
  list(runId: string): Promise<ArtifactInfo[]>;
  /** One artifact with its content, or undefined. */
  get(runId: string, name: string): Promise<Artifact | undefined>;
}

export function artifactsRepo(ctx: StoreContext): ArtifactsRepo {
  return {
    async put(input) {
      // A lone surrogate would be stored as U+FFFD, and the bytes read back would not be the ones hashed.
      if (loneSurrogate.test(input.content)) {
        throw new RunyardError("INVALID_INPUT", `artifact ${input.name} is not well-formed Unicode text`, {
          hint: "Artifacts hold UTF-8 text (diffs, JSONL, logs); encode binary data, e.g. as base64.",
        });
      }
      const bytes = Buffer.from(input.content, "utf8");
      const stored = {
        job_id: input.job_id ?? null,
        size: bytes.length,
        content_type: input.content_type,
        content: ctx.cipher.seal(input.content),
        sha256: createHash("sha256").update(bytes).digest("hex"),
        created_at: isoTime(ctx.now()),
      };
      try {
        const row = await ctx.db
          .insertInto("artifacts")
          .values({ run_id: input.run_id, name: input.name, ...stored })
          .onConflict((conflict) => conflict.columns(["run_id", "name"]).doUpdateSet(stored))
          .returning(infoColumns)
          .executeTakeFirstOrThrow();
        return toArtifactInfo(row);
      } catch (error) {
        if (ctx.dialect.constraintViolation(error) === "foreign_key") {
          throw new RunyardError("NOT_FOUND", `no run ${input.run_id} to store artifact ${input.name} for`, {
            cause: error,
          });
        }
        throw error;
      }
    },
    async list(runId) {
      const rows = await ctx.db
        .selectFrom("artifacts")
        .select(infoColumns)
        .where("run_id", "=", runId)
        .orderBy("name")
        .execute();
      return rows.map(toArtifactInfo);
    },
    async get(runId, name) {
      const row = await ctx.db
        .selectFrom("artifacts")
        .select([...infoColumns, "content"])
        .where("run_id", "=", runId)
        .where("name", "=", name)
        .executeTakeFirst();
      if (!row) return undefined;
      return { ...toArtifactInfo(row), content: ctx.cipher.open(row.content) };
    },
  };
}
