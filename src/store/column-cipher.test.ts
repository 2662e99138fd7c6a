import { describe, expect, it } from "vitest";
import { storeBackends } from "../../test/helpers/store-backends.js";
import { aesGcmColumns, plainColumns } from "./column-cipher.js";

const key = "k".repeat(40);
const secret = "hunter2-the-db-password";

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
});

describe.each(storeBackends)("columns encrypted at rest on $name", (backend) => {
  it("keeps run specs and vars, job payloads and results out of the database", async () => {
    const opened = await backend.open({ secretKey: key });
    const { store } = opened;
    const run = await store.runs.create({
      kind: "workflow",
      name: "w",
      spec: { workflow: "name: w", vars: { DB_PASSWORD: secret } },
      vars: { DB_PASSWORD: secret },
    });
    const job = await store.jobs.create({
      run_id: run.id,
      requirements: { labels: [] },
      payload: { env: { P: secret } },
    });
    await store.jobs.update(job.id, { result: { exports: { NEW_TOKEN: secret } } });
    await store.runs.update(run.id, { vars: { DB_PASSWORD: secret, MORE: secret } });
    expect((await opened.storedBytes()).toString("latin1")).not.toContain(secret);
    expect((await store.runs.get(run.id))?.spec).toEqual({
      workflow: "name: w",
      vars: { DB_PASSWORD: secret },
    });
    expect((await store.runs.get(run.id))?.vars).toEqual({ DB_PASSWORD: secret, MORE: secret });
    expect((await store.jobs.get(job.id))?.payload).toEqual({ env: { P: secret } });
    expect((await store.jobs.get(job.id))?.result).toEqual({ exports: { NEW_TOKEN: secret } });
    await store.close();
    expect((await opened.storedBytes()).toString("latin1")).not.toContain(secret);
    await opened.dispose();
  });

  it("refuses to open with another key, naming the fix", async () => {
    const opened = await backend.open({ secretKey: key });
    await opened.store.runs.create({ kind: "workflow", name: "w", spec: { vars: {} } });
    await opened.store.close();
    await expect(opened.reopen({ secretKey: "x".repeat(40) })).rejects.toMatchObject({
      code: "SECRET_KEY_MISMATCH",
    });
    await expect(opened.reopen({})).rejects.toMatchObject({ code: "SECRET_KEY_MISMATCH" });
    await opened.dispose();
  });
});
