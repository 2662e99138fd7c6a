import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { aesGcmColumns, plainColumns } from "./column-cipher.js";
import { openSqliteStore } from "./sqlite.js";

const key = "k".repeat(40);
const secret = "hunter2-the-db-password";

function rawBytes(path: string): string {
  let text = "";
  for (const file of [path, `${path}-wal`]) {
    try {
      text += readFileSync(file).toString("latin1");
    } catch {
      // no WAL at the moment
    }
  }
  return text;
}

describe("columns encrypted at rest", () => {
  it("seals and opens a value, differently each time", () => {
    const cipher = aesGcmColumns(key);
    const a = cipher.seal(secret);
    expect(a).not.toContain(secret);
    expect(a).not.toBe(cipher.seal(secret));
    expect(cipher.open(a)).toBe(secret);
    expect(cipher.open('{"stored":"before encryption"}')).toBe('{"stored":"before encryption"}');
    expect(plainColumns.seal(secret)).toBe(secret);
  });

  it("keeps run specs and vars, job payloads and results out of the database file", async () => {
    const path = join(mkdtempSync(join(tmpdir(), "runyard-cipher-")), "runyard.db");
    const store = await openSqliteStore(path, { secretKey: key });
    const run = await store.createRun({
      kind: "workflow",
      name: "w",
      spec: { workflow: "name: w", vars: { DB_PASSWORD: secret } },
      vars: { DB_PASSWORD: secret },
    });
    const job = await store.createJob({
      run_id: run.id,
      requirements: { labels: [] },
      payload: { env: { P: secret } },
    });
    await store.updateJob(job.id, { result: { exports: { NEW_TOKEN: secret } } });
    await store.updateRun(run.id, { vars: { DB_PASSWORD: secret, MORE: secret } });
    expect(rawBytes(path)).not.toContain(secret);
    expect((await store.getRun(run.id))?.spec).toEqual({
      workflow: "name: w",
      vars: { DB_PASSWORD: secret },
    });
    expect((await store.getRun(run.id))?.vars).toEqual({ DB_PASSWORD: secret, MORE: secret });
    expect((await store.getJob(job.id))?.payload).toEqual({ env: { P: secret } });
    expect((await store.getJob(job.id))?.result).toEqual({ exports: { NEW_TOKEN: secret } });
    await store.close();
    expect(rawBytes(path)).not.toContain(secret);
  });

  it("refuses to open with another key, naming the fix", async () => {
    const path = join(mkdtempSync(join(tmpdir(), "runyard-cipher-")), "runyard.db");
    const store = await openSqliteStore(path, { secretKey: key });
    await store.createRun({ kind: "workflow", name: "w", spec: { vars: {} } });
    await store.close();
    await expect(openSqliteStore(path, { secretKey: "x".repeat(40) })).rejects.toMatchObject({
      code: "SECRET_KEY_MISMATCH",
    });
    await expect(openSqliteStore(path)).rejects.toMatchObject({ code: "SECRET_KEY_MISMATCH" });
  });
});
