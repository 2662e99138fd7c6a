import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { JobJournal } from "./job-journal.js";

const folders: string[] = [];
afterEach(() => {
  for (const folder of folders.splice(0)) rmSync(folder, { recursive: true, force: true });
});

describe("a runner's journal once the runner stopped", () => {
  // A job cut at the stop (RunnerDaemon.stop) may end after the stop's settle, and its end still
  // calls `remove`: the journal's descriptor is closed by then, and its number may be another file's.
  it("writes nothing into a file opened after its close", () => {
    const state = mkdtempSync(join(tmpdir(), "runyard-journal-close-"));
    folders.push(state);
    const journal = new JobJournal(state);
    journal.add("cut-a");
    journal.add("cut-b");
    journal.close();
    const other = join(state, "someone-else.db");
    writeFileSync(other, "precious\n");
    const fd = openSync(other, "r+");
    try {
      try {
        journal.remove("cut-a");
      } catch {
        // a throw is better than a write into another file, but still the job's end failing
      }
      expect(readFileSync(other, "utf8")).toBe("precious\n");
    } finally {
      closeSync(fd);
    }
  });

  it("lets a job end after the stop without throwing", () => {
    const state = mkdtempSync(join(tmpdir(), "runyard-journal-close-"));
    folders.push(state);
    const journal = new JobJournal(state);
    journal.add("cut-a");
    journal.add("cut-b");
    journal.close();
    expect(() => journal.remove("cut-a")).not.toThrow();
    expect(() => journal.close()).not.toThrow();
  });
});
