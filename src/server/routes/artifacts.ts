import type { FastifyInstance, FastifyRequest } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { RunyardError } from "../../core/errors.js";
import type { ArtifactInfo, JobRecord } from "../../store/index.js";
import { apiSchemas, NoQuery } from "../api-schemas.js";
import { callerOf } from "../auth.js";
import type { ArtifactLimits, ServerDeps } from "../deps.js";
import { protectedErrorResponses, protectedResponses } from "../error-responses.js";
import { RunParams, visibleRun } from "./visible-run.js";

/**
 * The media types an upload may have. Agent artifacts are text (a diff, a JSONL transcript, test
 * output, logs); octet-stream is for clients that label every upload so, and must still be UTF-8.
 */
export const artifactContentTypes = [
  "text/plain",
  "application/x-ndjson",
  "text/x-diff",
  "application/octet-stream",
] as const;

/** Names read like file names, and become one in `content-disposition`: no path, no hidden file. */
const artifactName = /^(?!\.)[A-Za-z0-9._-]{1,100}$/;

const ArtifactName = z.string().describe("e.g. `diff.patch`, `transcript.jsonl`, `test-output.txt`");
const UploadParams = z.object({
  job_id: z.string().min(1).describe("the job leased to the uploading runner"),
  name: ArtifactName,
});
const ArtifactParams = z.object({ id: z.string().min(1).describe("the run id"), name: ArtifactName });

const ArtifactStored = z.object({
  name: z.string(),
  size: z.number().int().describe("bytes of the content"),
  sha256: z.string().describe("hex SHA-256 of the content"),
  path: z.string().describe("where to read it: `/api/runs/<run>/artifacts/<name>`"),
});

const ArtifactView = z.object({
  name: z.string(),
  size: z.number().int().describe("bytes of the content"),
  content_type: z.string().describe("as uploaded, e.g. `text/x-diff`"),
  sha256: z.string().describe("hex SHA-256 of the content"),
  created_at: z.string().describe("when this content was stored (an upload under the same name replaces it)"),
  url: z.string().describe("the content: `/api/runs/<run>/artifacts/<name>`"),
});
apiSchemas.add(ArtifactView, { id: "Artifact" });

const ArtifactList = z.object({ artifacts: z.array(ArtifactView).describe("sorted by name") });

const artifactPath = (runId: string, name: string): string =>
  `/api/runs/${encodeURIComponent(runId)}/artifacts/${encodeURIComponent(name)}`;

function checkName(name: string): void {
  if (artifactName.test(name)) return;
  const shown = JSON.stringify(name.length > 40 ? `${name.slice(0, 40)}...` : name);
  const fixed = name
    .replace(/[^A-Za-z0-9._-]/g, "_")
    .replace(/^\.+/, "")
    .slice(0, 100);
  throw new RunyardError("INVALID_INPUT", `${shown} is not a valid artifact name`, {
    hint: `Name artifacts like files: 1 to 100 letters, digits, '.', '_' and '-', not starting with '.'${artifactName.test(fixed) ? ` (e.g. ${fixed})` : ""}.`,
  });
}

/** The media type of the upload, without parameters; `charset` is not kept, the content is UTF-8. */
function mediaType(request: FastifyRequest): string {
  const header = request.headers["content-type"] ?? "";
  return header.split(";")[0]?.trim().toLowerCase() || "application/octet-stream";
}

/** Text types are served with their charset, so a browser shows them as the UTF-8 they are. */
function servedType(contentType: string): string {
  return contentType.startsWith("text/") || contentType === "application/x-ndjson"
    ? `${contentType}; charset=utf-8`
    : contentType;
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** The body as text; an upload that is not UTF-8 is refused, since artifacts are stored as text. */
function decodeUtf8(body: Buffer): string {
  try {
    return utf8.decode(body);
  } catch {
    throw new RunyardError("INVALID_INPUT", "the artifact is not valid UTF-8 text", {
      hint: "Artifacts hold text (diffs, JSONL transcripts, test output, logs); encode binary data, e.g. as base64, before uploading it.",
    });
  }
}

function bodyTooLarge(bytes: number | undefined, limits: ArtifactLimits): RunyardError {
  const size = bytes === undefined ? "larger than" : `${bytes} bytes, more than`;
  return new RunyardError(
    "BODY_TOO_LARGE",
    `the artifact is ${size} the ${limits.maxArtifactBytes} bytes one artifact may hold`,
    {
      hint: "Upload less (the tail of a log, a diff without generated files), or have the operator raise RUNYARD_MAX_ARTIFACT_BYTES.",
    },
  );
}

/**
 * Artifacts of runs: runners upload them for the jobs leased to them, whoever may see a run reads
 * them. They live in the database (docs/artifacts.md): server replicas share nothing else, and a
 * runner uploads to whichever replica it reaches.
 */
export function artifactRoutes(app: FastifyInstance, deps: ServerDeps): void {
  const limits = deps.artifactLimits;
  // A scope of its own: the upload's raw-body parsers apply to it alone, not to the JSON routes.
  app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser(
      [...artifactContentTypes],
      { parseAs: "buffer", bodyLimit: limits.maxArtifactBytes },
      (_request, body, done) => {
        try {
          done(null, decodeUtf8(body as Buffer));
        } catch (error) {
          done(error as Error, undefined);
        }
      },
    );
    uploadRoute(scope, deps, limits);
  });
  readRoutes(app, deps);
}

/**
 * The job an upload is for, when the caller may upload for it: a runner token, of the runner the
 * job is leased to (the rule of the runner socket's reports), while the job has not finished.
 */
async function uploadableJob(
  deps: ServerDeps,
  request: FastifyRequest,
  jobId: string,
  name: string,
): Promise<JobRecord> {
  checkName(name);
  const caller = callerOf(request);
  if (caller.kind !== "runner") {
    throw new RunyardError("FORBIDDEN", "only runner tokens upload artifacts", {
      hint: "Runners upload the artifacts of the jobs leased to them; read them with GET /api/runs/:id/artifacts.",
    });
  }
  const job = await deps.store.jobs.get(jobId);
  if (!job) {
    throw new RunyardError("NOT_FOUND", `job ${jobId} does not exist`, {
      hint: "Upload with the job id of an assign message this runner accepted.",
    });
  }
  const runner = job.runner_id ? await deps.store.runners.get(job.runner_id) : undefined;
  if (!runner || runner.token_id !== caller.token_id) {
    deps.logger.warn(
      { jobId, runnerId: job.runner_id, tokenId: caller.token_id, artifact: name },
      "refused an artifact upload for a job not leased to this runner",
    );
    throw new RunyardError("FORBIDDEN", `job ${jobId} is not leased to a runner of this token`, {
      hint: "A runner uploads artifacts only for the jobs leased to it, with the token it connected with.",
    });
  }
  if (job.status === "done" || job.status === "lost") {
    throw new RunyardError("CONFLICT", `job ${jobId} has finished; its run's artifacts no longer change`, {
      hint: "Upload a job's artifacts before it sends `finished`.",
    });
  }
  return job;
}

function uploadRoute(app: FastifyInstance, deps: ServerDeps, limits: ArtifactLimits): void {
  app.withTypeProvider<ZodTypeProvider>().put(
    "/api/jobs/:job_id/artifacts/:name",
    {
      bodyLimit: limits.maxArtifactBytes,
      // Before the body is read: a caller that may not upload here, or a declared size past the
      // cap, is refused without reading a byte of it.
      preParsing: async (request) => {
        const { job_id: jobId, name } = UploadParams.parse(request.params);
        await uploadableJob(deps, request, jobId, name);
        const declared = Number(request.headers["content-length"]);
        if (Number.isFinite(declared) && declared > limits.maxArtifactBytes) {
          throw bodyTooLarge(declared, limits);
        }
      },
      preValidation: async (request) => {
        if (request.headers["content-type"] === undefined) {
          throw new RunyardError("INVALID_INPUT", "the upload has no content-type", {
            hint: `Send the content raw with one of: ${artifactContentTypes.map((type) => `content-type: ${type}`).join(", ")}.`,
          });
        }
      },
      schema: {
        operationId: "uploadArtifact",
        summary: "Upload an artifact of a job (runners only)",
        description: `For runners: the body is the artifact's content, raw UTF-8 text (${artifactContentTypes.join(", ")}), authenticated by the runner token of the runner the job is leased to; any other token is 403. Up to RUNYARD_MAX_ARTIFACT_BYTES (16 MiB) each and RUNYARD_MAX_RUN_ARTIFACT_BYTES (64 MiB) per run, else 413 and nothing is stored. An upload under a name the run has replaces it. A finished job is 409. It emits no event: the runner sends \`artifact.created\` once the upload succeeded.`,
        tags: ["artifacts"],
        params: UploadParams,
        querystring: NoQuery,
        consumes: [...artifactContentTypes],
        body: z.string().describe("the content, UTF-8 text"),
        response: protectedResponses(201, "the artifact is stored", ArtifactStored, 400, 404, 409, 413),
      },
    },
    async (request, reply) => {
      const { job_id: jobId, name } = request.params;
      // Again, now that the body is in: the job may have finished during a long upload.
      const job = await uploadableJob(deps, request, jobId, name);
      const content = request.body;
      const size = Buffer.byteLength(content, "utf8");
      if (size > limits.maxArtifactBytes) throw bodyTooLarge(size, limits);
      const others = (await deps.store.artifacts.list(job.run_id))
        .filter((artifact) => artifact.name !== name)
        .reduce((sum, artifact) => sum + artifact.size, 0);
      if (others + size > limits.maxRunArtifactBytes) {
        throw new RunyardError(
          "BODY_TOO_LARGE",
          `run ${job.run_id}'s artifacts would hold ${others + size} bytes, more than the ${limits.maxRunArtifactBytes} a run may hold`,
          {
            hint: "Upload less (the tail of a log, a diff without generated files); an upload under an existing name replaces it and frees its bytes. The operator can raise RUNYARD_MAX_RUN_ARTIFACT_BYTES.",
          },
        );
      }
      const stored = await deps.store.artifacts.put({
        run_id: job.run_id,
        name,
        job_id: job.id,
        content_type: mediaType(request),
        content,
      });
      return reply.code(201).send({
        name: stored.name,
        size: stored.size,
        sha256: stored.sha256,
        path: artifactPath(job.run_id, stored.name),
      });
    },
  );
}

function readRoutes(app: FastifyInstance, deps: ServerDeps): void {
  const api = app.withTypeProvider<ZodTypeProvider>();
  const view = (runId: string, artifact: ArtifactInfo) => ({
    name: artifact.name,
    size: artifact.size,
    content_type: artifact.content_type,
    sha256: artifact.sha256,
    created_at: artifact.created_at,
    url: artifactPath(runId, artifact.name),
  });

  api.get(
    "/api/runs/:id/artifacts",
    {
      schema: {
        operationId: "listArtifacts",
        summary: "A run's artifacts",
        description: "Names, sizes, types and hashes (no content), sorted by name; whoever may see the run.",
        tags: ["artifacts"],
        params: RunParams,
        querystring: NoQuery,
        response: protectedResponses(200, "the artifacts", ArtifactList, 400, 404),
      },
    },
    async (request) => {
      const run = await visibleRun(deps, request, request.params.id);
      const artifacts = await deps.store.artifacts.list(run.id);
      return { artifacts: artifacts.map((artifact) => view(run.id, artifact)) };
    },
  );

  api.get(
    "/api/runs/:id/artifacts/:name",
    {
      schema: {
        operationId: "getArtifact",
        summary: "One artifact's content",
        description:
          "The content as uploaded, with its content type, `content-length` and `content-disposition: attachment`.",
        tags: ["artifacts"],
        params: ArtifactParams,
        querystring: NoQuery,
        response: {
          200: {
            description: "the content, in the media type it was uploaded with",
            content: Object.fromEntries(
              artifactContentTypes.map((type) => [type, { schema: z.string().describe("the content") }]),
            ),
          },
          ...protectedErrorResponses(400, 404),
        },
      },
    },
    async (request, reply) => {
      const { id, name } = request.params;
      checkName(name);
      const run = await visibleRun(deps, request, id);
      const artifact = await deps.store.artifacts.get(run.id, name);
      if (!artifact) {
        throw new RunyardError("NOT_FOUND", `run ${run.id} has no artifact ${name}`, {
          hint: `GET /api/runs/${run.id}/artifacts lists the artifacts the run has.`,
        });
      }
      return reply
        .header("content-type", servedType(artifact.content_type))
        .header("content-length", String(artifact.size))
        .header("content-disposition", `attachment; filename="${artifact.name}"`)
        .header("x-content-type-options", "nosniff")
        .send(artifact.content);
    },
  );
}
