import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Kysely, sql } from "kysely";
import { afterEach, describe, expect, inject, it } from "vitest";
import { createTestDatabase } from "../../test/helpers/postgres.js";
import { postgresDialect, type StoreDialect, sqliteDialect } from "./dialect.js";
import { connectPostgres } from "./postgres.js";
import { type PreparingContext, preparedName, preparedStatement } from "./prepared.js";
import type { Database } from "./schema.js";
import { openSqliteDatabase } from "./sqlite.js";

interface Backend {
  name: string;
  available: boolean;
  open(): Promise<{ db: Kysely<Database>; dialect: StoreDialect; dispose(): Promise<void> }>;
}

const backends: Backend[] = [
  {
    name: "sqlite",
    available: true,
    async open() {
      const dir = mkdtempSync(join(tmpdir(), "runyard-prepared-"));
      const db = openSqliteDatabase(join(dir, "prepared.db"));
      return {
        db,
        dialect: sqliteDialect,
        async dispose() {
          await db.destroy();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  },
  {
    name: "postgres",
    available: inject("postgresAdminUrl") !== "",
    async open() {
      const db = await connectPostgres(await createTestDatabase(inject("postgresAdminUrl")), { poolSize: 2 });
      return { db, dialect: postgresDialect, dispose: () => db.destroy() };
    },
  },
];

describe.each(backends.filter((backend) => backend.available))("preparedStatement on $name", (backend) => {
  let ctx: PreparingContext & { dispose(): Promise<void> };

  afterEach(async () => {
    await ctx.dispose();
  });

  it("compiles a statement once per shape and runs it with each input's own values", async () => {
    ctx = await backend.open();
    let builds = 0;
    const pick = preparedStatement(
      (c, v: { name: string; tags: string[]; upper: boolean }, input) => {
        builds++;
        const text = (value: unknown) => sql`cast(${value} as text)`;
        const name = input.upper ? sql`upper(${text(v.name)})` : text(v.name);
        const tags = sql.join(v.tags.map(text), sql` || ',' || `);
        return sql<{ name: string; tags: string }>`select ${name} as name, ${tags} as tags`.compile(c.db);
      },
      (input) => (input.upper ? "upper" : "as is"),
    );
    const run = async (input: { name: string; tags: string[]; upper: boolean }) =>
      (await pick(ctx, input)).rows[0];
    expect(await run({ name: "a", tags: ["x", "y"], upper: false })).toEqual({ name: "a", tags: "x,y" });
    expect(await run({ name: "b", tags: ["z", "w"], upper: false })).toEqual({ name: "b", tags: "z,w" });
    expect(builds).toBe(1);
    // Another length of a list, or another shape said by `shape`: compiled anew, once.
    expect(await run({ name: "c", tags: ["q"], upper: false })).toEqual({ name: "c", tags: "q" });
    expect(await run({ name: "d", tags: ["r", "s"], upper: true })).toEqual({ name: "D", tags: "r,s" });
    expect(await run({ name: "e", tags: ["t", "u"], upper: true })).toEqual({ name: "E", tags: "t,u" });
    expect(builds).toBe(3);
  });

  it("builds an input whose shape is not kept for that input alone, with its values", async () => {
    ctx = await backend.open();
    let builds = 0;
    const count = preparedStatement(
      (c, v: { values: number[] }) => {
        builds++;
        return sql<{ n: number | string }>`select ${sql.lit(v.values.length)} as n`.compile(c.db);
      },
      (input) => (input.values.length > 2 ? undefined : ""),
    );
    expect(Number((await count(ctx, { values: [1, 2, 3] })).rows[0]?.n)).toBe(3);
    expect(Number((await count(ctx, { values: [1, 2, 3] })).rows[0]?.n)).toBe(3);
    expect(builds).toBe(2);
    expect(Number((await count(ctx, { values: [1] })).rows[0]?.n)).toBe(1);
    expect(Number((await count(ctx, { values: [2] })).rows[0]?.n)).toBe(1);
    expect(builds).toBe(3);
  });

  it("names the statements it keeps for PostgreSQL connections to prepare, and only those", async () => {
    ctx = await backend.open();
    const echo = preparedStatement((c, v: { text: string }) =>
      sql<{ text: string }>`select cast(${v.text} as text) as text /* prepared.test */`.compile(c.db),
    );
    for (const text of ["one", "two", "three"]) expect((await echo(ctx, { text })).rows).toEqual([{ text }]);
    const compiled = sql`select cast(${"x"} as text) as text /* prepared.test */`.compile(ctx.db).sql;
    if (backend.name === "postgres") expect(preparedName(compiled)).toMatch(/^runyard_\d+$/);
    else expect(preparedName(compiled)).toBeUndefined();
    expect(preparedName("select 1")).toBeUndefined();
  });

  it("goes on when a migration changes the columns a prepared statement returns", async () => {
    ctx = await backend.open();
    await sql`create table prepared_probe (id text)`.execute(ctx.db);
    await sql`insert into prepared_probe (id) values ('a')`.execute(ctx.db);
    const all = preparedStatement((c, v: { id: string }) =>
      sql<Record<string, unknown>>`select * from prepared_probe where id = ${v.id}`.compile(c.db),
    );
    expect((await all(ctx, { id: "a" })).rows).toEqual([{ id: "a" }]);
    await sql`alter table prepared_probe add column note text`.execute(ctx.db);
    // PostgreSQL refuses the plan it cached for `select *` now; the statement runs unnamed instead.
    for (let i = 0; i < 3; i++) expect((await all(ctx, { id: "a" })).rows).toEqual([{ id: "a", note: null }]);
  });
});
