import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningServer } from "../src/server/server.js";
import { useTheApi } from "./fixtures/api-client/usage.js";
import { clientTypes } from "./helpers/api-types.js";
import { repoRoot } from "./helpers/cli.js";
import { adminToken, startInProcessServer } from "./helpers/in-process.js";

const run = promisify(execFile);

const workflow =
  "version: v0.1\nname: typed\ninventory:\n  hosts:\n    x: {group: nobody}\nsteps:\n  - name: s\n    action: cmd.run\n    args:\n      cmd: echo hi\n";

let server: RunningServer;
let document: { paths: Record<string, Record<string, { responses: Record<string, { content?: unknown }> }>> };
/** Scratch folders under node_modules/.cache, so their imports resolve to this checkout's packages. */
let scratch: string;

beforeAll(async () => {
  server = await startInProcessServer();
  const response = await fetch(new URL("/openapi.json", server.url));
  document = (await response.json()) as typeof document;
  const cache = join(repoRoot, "node_modules", ".cache");
  mkdirSync(cache, { recursive: true });
  scratch = mkdtempSync(join(cache, "runyard-api-client-"));
});

afterAll(async () => {
  await server.close();
  rmSync(scratch, { recursive: true, force: true });
});

/** Compiles the usage fixture with `tsc --strict` against client types made of `doc`. */
async function compileUsage(doc: object, name: string): Promise<{ ok: boolean; output: string }> {
  const dir = join(scratch, name);
  mkdirSync(dir);
  writeFileSync(join(dir, "api-types.ts"), await clientTypes(doc));
  const usage = readFileSync(join(repoRoot, "test/fixtures/api-client/usage.ts"), "utf8");
  writeFileSync(join(dir, "usage.ts"), usage.replace("../../../src/client/api-types.js", "./api-types.js"));
  writeFileSync(join(dir, "package.json"), JSON.stringify({ type: "module" }));
  writeFileSync(
    join(dir, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        noUncheckedIndexedAccess: true,
        noEmit: true,
        module: "nodenext",
        moduleResolution: "nodenext",
        target: "es2023",
        lib: ["es2023"],
        types: ["node"],
        skipLibCheck: true,
      },
      files: ["usage.ts"],
    }),
  );
  const tsc = join(repoRoot, "node_modules/typescript-7/bin/tsc");
  try {
    const { stdout } = await run(process.execPath, [tsc, "-p", dir], { cwd: dir });
    return { ok: true, output: stdout };
  } catch (error) {
    return { ok: false, output: String((error as { stdout?: string }).stdout) };
  }
}

describe("the OpenAPI document", () => {
  it("passes redocly lint with no error and no warning", async () => {
    const file = join(scratch, "openapi.json");
    writeFileSync(file, JSON.stringify(document));
    const redocly = join(repoRoot, "node_modules/@redocly/cli/bin/cli.js");
    const { stdout } = await run(
      process.execPath,
      [redocly, "lint", file, "--config", join(repoRoot, "redocly.yaml"), "--format=json"],
      { env: { ...process.env, REDOCLY_TELEMETRY: "off", REDOCLY_SUPPRESS_UPDATE_NOTICE: "true" } },
    ).catch((error: { stdout?: string }) => ({ stdout: String(error.stdout) }));
    const report = JSON.parse(stdout) as {
      totals: { errors: number; warnings: number };
      problems: unknown[];
    };
    expect(report.problems).toEqual([]);
    expect(report.totals).toMatchObject({ errors: 0, warnings: 0 });
  }, 120_000);
});

describe("a client generated with openapi-typescript and openapi-fetch", () => {
  it("compiles under --strict against the types of the live document", async () => {
    const { ok, output } = await compileUsage(document, "live");
    expect(output).toBe("");
    expect(ok).toBe(true);
  }, 120_000);

  it("does not compile against a document whose 2xx bodies are untyped, as the old one was", async () => {
    const untyped = structuredClone(document);
    for (const methods of Object.values(untyped.paths)) {
      for (const operation of Object.values(methods)) {
        for (const [status, response] of Object.entries(operation.responses)) {
          if (status.startsWith("2")) delete response.content;
        }
      }
    }
    const { ok, output } = await compileUsage(untyped, "untyped");
    expect(ok).toBe(false);
    expect(output).toContain("usage.ts(");
    expect(output).toContain("does not exist on type 'never'");
  }, 120_000);

  it("gets the responses its types promise from a running server", async () => {
    const seen = await useTheApi(server.url, adminToken, workflow);
    const stored = await server.store.runs.get(seen.runId);
    expect(seen).toEqual({
      runId: stored?.id,
      status: "queued",
      waitingFor: ["x"],
      listed: [seen.runId],
      canceled: "canceled",
      runners: 0,
      version: "0.0.0-test",
      notFound: { code: "NOT_FOUND", hint: expect.stringContaining("runyard runs list"), status: 404 },
      invalid: { code: "INVALID_INPUT", fields: ["limit"] },
    });
  });
});
