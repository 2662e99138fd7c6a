import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, inject, it } from "vitest";
import { createTestDatabase } from "../../test/helpers/postgres.js";
import { createStore } from "./create-store.js";

describe("createStore", () => {
  it("keeps the store in the SQLite file when no database URL is given", async () => {
    const path = join(mkdtempSync(join(tmpdir(), "runyard-create-")), "runyard.db");
    const store = await createStore({ sqlitePath: path });
    await store.runs.create({ kind: "workflow", name: "w" });
    await store.close();
    expect(existsSync(path)).toBe(true);
  });

  it.skipIf(!inject("postgresAdminUrl"))(
    "keeps the store in PostgreSQL when given a postgres:// URL",
    async () => {
      const path = join(mkdtempSync(join(tmpdir(), "runyard-create-")), "runyard.db");
      const databaseUrl = await createTestDatabase(inject("postgresAdminUrl"));
      const store = await createStore({ databaseUrl, sqlitePath: path });
      const run = await store.runs.create({ kind: "workflow", name: "w" });
      await store.close();
      expect(existsSync(path)).toBe(false);
      const again = await createStore({ databaseUrl });
      expect((await again.runs.get(run.id))?.name).toBe("w");
      await again.close();
    },
  );
});
