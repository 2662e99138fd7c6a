import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Kysely, Migrator, sql } from "kysely";
import { describe, expect, inject, it } from "vitest";
import { createTestDatabase } from "../../../test/helpers/postgres.js";
import { createStore } from "../create-store.js";
import { type DatabaseLocation, openDatabase } from "../database-location.js";
import { migrationLockTableName, migrations, migrationTableName } from "./index.js";

const adminUrl = inject("postgresAdminUrl");
const backends = adminUrl ? (["sqlite", "postgres"] as const) : (["sqlite"] as const);
const names = Object.keys(migrations);
const before = names[names.indexOf("0020_hook_names_per_tenant") - 1] ?? "";

async function newLocation(backend: "sqlite" | "postgres"): Promise<DatabaseLocation> {
  if (backend === "postgres") return { dialect: "postgres", url: await createTestDatabase(adminUrl) };
  return { dialect: "sqlite", path: join(mkdtempSync(join(tmpdir(), "runyard-hooks-")), "runyard.db") };
}

describe.each(backends)("hook names per tenant, on %s", (backend) => {
  it("keeps a hook made when names were global, delivered to by its name, with its deliveries", async () => {
    const location = await newLocation(backend);
    const opened = await openDatabase(location, { readonly: false });
    const db = opened.db as Kysely<unknown>;
    const migrator = new Migrator({
      db,
      provider: { getMigrations: async () => migrations },
      migrationTableName,
      migrationLockTableName,
    });
    expect((await migrator.migrateTo(before)).error).toBeUndefined();
    await sql`insert into hooks (name, tenant_id, workflow, vars, secret, created_at, created_by)
      values ('deploy', 'acme', 'on-push', '{"BRANCH":"$.ref"}', 'old-secret-0123456789', '2026-01-01T00:00:00.000Z', 'tok_a')`.execute(
      db,
    );
    await sql`insert into hook_deliveries (hook_name, delivery_id, run_id, received_at)
      values ('deploy', 'd-1', 'run_1', '2026-01-01T00:00:00.000Z')`.execute(db);
    await opened.close();

    const store = await createStore(
      location.dialect === "postgres" ? { databaseUrl: location.url } : { sqlitePath: location.path },
    );
    try {
      const old = await store.hooks.get("acme", "deploy");
      expect(old).toMatchObject({ id: "deploy", name: "deploy", tenant_id: "acme", workflow: "on-push" });
      expect(await store.hooks.byId("deploy")).toEqual(old);
      expect(await store.hooks.secret("deploy")).toBe("old-secret-0123456789");
      const again = await store.hooks.recordDelivery({
        hook_id: "deploy",
        delivery_id: "d-1",
        run_id: "run_2",
      });
      expect(again).toMatchObject({ first: false, delivery: { run_id: "run_1" } });
      // Another tenant may now take the name; acme may not take it twice.
      await store.hooks.create({
        id: "hook_globex",
        name: "deploy",
        tenant_id: "globex",
        workflow: "w",
        vars: {},
        secret: "s-0123456789abcdef",
        created_by: null,
      });
      await expect(
        store.hooks.create({
          id: "hook_acme2",
          name: "deploy",
          tenant_id: "acme",
          workflow: "w",
          vars: {},
          secret: "s-0123456789abcdef",
          created_by: null,
        }),
      ).rejects.toMatchObject({ code: "CONFLICT" });
      // A hook's deliveries go with it.
      expect(await store.hooks.remove("deploy")).toBe(true);
      expect(
        (await store.hooks.recordDelivery({ hook_id: "hook_globex", delivery_id: "d-1", run_id: "run_3" }))
          .first,
      ).toBe(true);
    } finally {
      await store.close();
    }
  });
});
