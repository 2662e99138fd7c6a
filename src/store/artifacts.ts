import { createHash } from "node:crypto";
import type { Selectable } from "kysely";
import { RunyardError } from "../core/errors.js";
import type { StoreContext } from "./dialect.js";
import { type ArtifactsTable, int, isoTime } from "./schema.js";
import type { Artifact, ArtifactInfo, NewArtifact } from "./types.js";

/** In `u` mode a surrogate pair is one code point: only a lone surrogate matches. */
const loneSurrogate = /\p{Cs}/u;

const infoColumns = ["name", "size", "content_type", "sha256", "job_id", "created_at"] as const;

function toArtifactInfo(row: Pick<Selectable<ArtifactsTable>, (typeof infoColumns)[number]>): ArtifactInfo {
  return {
    name: row.name,
    size: int(row.size),
    content_type: row.content_type,
    sha256: row.sha256,
    job_id: row.job_id,
    created_at: row.created_at,
  };
}

export async function putArtifact(ctx: StoreContext, input: NewArtifact): Promise<ArtifactInfo> {
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
}

export async function listArtifacts(ctx: StoreContext, runId: string): Promise<ArtifactInfo[]> {
  const rows = await ctx.db
    .selectFrom("artifacts")
    .select(infoColumns)
    .where("run_id", "=", runId)
    .orderBy("name")
    .execute();
  return rows.map(toArtifactInfo);
}

export async function getArtifact(
  ctx: StoreContext,
  runId: string,
  name: string,
): Promise<Artifact | undefined> {
  const row = await ctx.db
    .selectFrom("artifacts")
    .select([...infoColumns, "content"])
    .where("run_id", "=", runId)
    .where("name", "=", name)
    .executeTakeFirst();
  if (!row) return undefined;
  return { ...toArtifactInfo(row), content: ctx.cipher.open(row.content) };
}
