import { createHash } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { storeBackends, type TestStore } from "../../test/helpers/store-backends.js";
import type { Store } from "./types.js";

const secretKey = "artifacts-test-key-0123456789abcdefghij";
const sha256 = (text: string) => createHash("sha256").update(text, "utf8").digest("hex");

describe.each(storeBackends)("on $name", (backend) => {
  let opened: TestStore;
  let store: Store;
  let clock: Date;
  let runId: string;

  beforeEach(async () => {
    clock = new Date("2026-01-01T00:00:00.000Z");
    opened = await backend.open({ now: () => clock, secretKey });
    store = opened.store;
    runId = (await store.runs.create({ kind: "agent", name: "fix the bug" })).id;
  });

  afterEach(() => opened.dispose());

  describe("artifacts", () => {
    it("stores an artifact with its UTF-8 size and hash, and gives the content back as stored", async () => {
      const content = "diff --git a/ü.txt b/ü.txt\n+naïve 😀\n";
      const info = await store.artifacts.put({
        run_id: runId,
        name: "diff.patch",
        job_id: "job_1",
        content_type: "text/x-diff",
        content,
      });
      const expected = {
        name: "diff.patch",
        size: Buffer.byteLength(content, "utf8"),
        content_type: "text/x-diff",
        sha256: sha256(content),
        job_id: "job_1",
        created_at: "2026-01-01T00:00:00.000Z",
      };
      expect(info).toEqual(expected);
      expect(info.size).toBeGreaterThan(content.length);
      expect(await store.artifacts.get(runId, "diff.patch")).toEqual({ ...expected, content });
    });

    it("replaces the artifact of the same name: a turn may rewrite its transcript", async () => {
      await store.artifacts.put({
        run_id: runId,
        name: "transcript.jsonl",
        job_id: "job_1",
        content_type: "application/x-ndjson",
        content: '{"turn":1}\n',
      });
      clock = new Date("2026-01-01T00:05:00.000Z");
      const second = '{"turn":1}\n{"turn":2}\n';
      const info = await store.artifacts.put({
        run_id: runId,
        name: "transcript.jsonl",
        job_id: "job_2",
        content_type: "application/x-ndjson",
        content: second,
      });
      expect(info).toMatchObject({ job_id: "job_2", size: second.length, created_at: clock.toISOString() });
      expect(await store.artifacts.list(runId)).toEqual([info]);
      expect((await store.artifacts.get(runId, "transcript.jsonl"))?.content).toBe(second);
    });

    it("lists a run's artifacts by name without content, and no other run's", async () => {
      const other = (await store.runs.create({ kind: "agent", name: "other" })).id;
      for (const name of ["test-output.txt", "diff.patch", "agent.log"]) {
        await store.artifacts.put({
          run_id: runId,
          name,
          content_type: "text/plain",
          content: `${name} body`,
        });
      }
      await store.artifacts.put({
        run_id: other,
        name: "diff.patch",
        content_type: "text/plain",
        content: "x",
      });
      const listed = await store.artifacts.list(runId);
      expect(listed.map((artifact) => artifact.name)).toEqual(["agent.log", "diff.patch", "test-output.txt"]);
      expect(listed[0]).toEqual({
        name: "agent.log",
        size: "agent.log body".length,
        content_type: "text/plain",
        sha256: sha256("agent.log body"),
        job_id: null,
        created_at: "2026-01-01T00:00:00.000Z",
      });
      expect(JSON.stringify(listed)).not.toContain("body");
      expect(await store.artifacts.list("run_unknown")).toEqual([]);
    });

    it("answers undefined for an artifact or run it does not have", async () => {
      expect(await store.artifacts.get(runId, "diff.patch")).toBeUndefined();
      expect(await store.artifacts.get("run_unknown", "diff.patch")).toBeUndefined();
    });

    it("refuses an artifact of a run that does not exist (NOT_FOUND)", async () => {
      await expect(
        store.artifacts.put({
          run_id: "run_unknown",
          name: "a.txt",
          content_type: "text/plain",
          content: "x",
        }),
      ).rejects.toMatchObject({ code: "NOT_FOUND" });
    });

    it("refuses text that is not well-formed Unicode, and stores nothing", async () => {
      await expect(
        store.artifacts.put({
          run_id: runId,
          name: "bad.txt",
          content_type: "text/plain",
          content: "a\ud800b",
        }),
      ).rejects.toMatchObject({ code: "INVALID_INPUT", message: expect.stringContaining("bad.txt") });
      expect(await store.artifacts.list(runId)).toEqual([]);
    });

    it("keeps content sealed: a marker in the content is not in the stored bytes", async () => {
      const marker = "artifact-marker-never-in-clear-4711";
      await store.artifacts.put({
        run_id: runId,
        name: "agent.log",
        content_type: "text/plain",
        content: `line one\n${marker}\n`,
      });
      await store.close();
      const bytes = await opened.storedBytes();
      expect(bytes.includes("agent.log")).toBe(true);
      expect(bytes.includes(marker)).toBe(false);
      const again = await opened.reopen({ secretKey });
      try {
        expect((await again.artifacts.get(runId, "agent.log"))?.content).toBe(`line one\n${marker}\n`);
      } finally {
        await again.close();
      }
    });
  });
});
