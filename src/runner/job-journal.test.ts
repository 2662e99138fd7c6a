import {
  appendFileSync,
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { JobJournal } from "./job-journal.js";

const folders: string[] = [];
afterEach(() => {
  for (const folder of folders.splice(0)) rmSync(folder, { recursive: true, force: true });
});

function stateFolder(): string {
  const folder = mkdtempSync(join(tmpdir(), "runyard-journal-"));
  folders.push(folder);
  return folder;
}

describe("a runner's journal of the jobs it holds", () => {
  it("tells its next life the jobs held when it died, and only those", () => {
    const state = stateFolder();
    const first = new JobJournal(state);
    first.add("job-a");
    first.add("job b/1");
    first.add("job-c");
    first.remove("job-a");
    // Killed here: the file is all the next life has.
    const next = new JobJournal(state);
    expect(next.previous.sort()).toEqual(["job b/1", "job-c"]);
    // Said once: the life after lists nothing of them.
    next.close();
    expect(new JobJournal(state).previous).toEqual([]);
  });

  it("starts the file over once nothing is held, so it does not grow with every job", () => {
    const state = stateFolder();
    const journal = new JobJournal(state);
    for (let i = 0; i < 100; i++) {
      journal.add(`job-${i}`);
      journal.remove(`job-${i}`);
    }
    journal.add("last");
    expect(readFileSync(join(state, "jobs.log"), "utf8")).toBe("+ last\n");
    journal.close();
  });

  it("skips a line a kill cut short, and reads the folder an older runner left", () => {
    const state = stateFolder();
    new JobJournal(state).close();
    appendFileSync(join(state, "jobs.log"), "+ whole\n+ ");
    mkdirSync(join(state, "jobs"));
    writeFileSync(join(state, "jobs", encodeURIComponent("older/1")), "");
    const journal = new JobJournal(state);
    expect(journal.previous.sort()).toEqual(["older/1", "whole"]);
    journal.close();
  });
});

describe("a runner's journal once the runner stopped", () => {
  // A job cut at the stop (RunnerDaemon.stop) may end after the stop's settle, and its end still
  // calls `remove`: the journal's descriptor is closed by then, and its number may be another file's.
  function stopped(): { state: string; journal: JobJournal } {
    const state = stateFolder();
    const journal = new JobJournal(state);
    journal.add("cut-a");
    journal.add("cut-b");
    journal.close();
    return { state, journal };
  }

  it("writes nothing into a file opened after its close", () => {
    const { state, journal } = stopped();
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
    const { journal } = stopped();
    expect(() => journal.remove("cut-a")).not.toThrow();
    expect(() => journal.close()).not.toThrow();
  });
});
