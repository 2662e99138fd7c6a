import type { CompiledQuery, QueryResult } from "kysely";
import type { StoreContext } from "./dialect.js";

/** What a statement is built and run with: the database (or the transaction) and its dialect. */
export type PreparingContext = Pick<StoreContext, "db" | "dialect">;

/** Stands, in a statement being built, for the value at `path` of the input at each run. */
class Slot {
  constructor(readonly path: ReadonlyArray<string | number>) {}
}

/** One compiled form of a statement: its SQL, and where each `?` / `$n` takes its value from. */
interface Compiled {
  sql: string;
  query: CompiledQuery["query"];
  queryId: CompiledQuery["queryId"];
  /** Per parameter of the SQL, in order: the input's value it takes, or a value fixed at build. */
  values: ReadonlyArray<Slot | { fixed: unknown }>;
}

/**
 * What PostgreSQL prepares by name: the SQL text of every hot statement compiled for it, and the
 * name this process's connections prepare it under (`postgres.ts` hands it to node-postgres as
 * `name:`). Prepared statements belong to one connection, so a name need only be unique here.
 */
const postgresNames = new Map<string, string>();

/** The name PostgreSQL connections prepare `sql` under, if it is one of the store's hot statements. */
export function preparedName(sql: string): string | undefined {
  return postgresNames.get(sql);
}

/**
 * A statement the store runs for every run (the run's insert, its events, the job verbs), built
 * with Kysely and compiled once per dialect and shape, then run with new values only. Building
 * and compiling is most of what a small statement costs in JavaScript (the run's insert alone is
 * one operation node per column and value), and a run used to cost about forty statements.
 *
 * `build` compiles the statement (`.compile()`, or `.compile(ctx.db)` for `sql`) from stand-ins
 * for the input's values (an array or a plain object in it gets one per element); it reads the
 * input itself only to choose the statement's shape, and `shape` must then say what it chose.
 * The input's structure (its keys, each array's length, each object's keys; an undefined value
 * counts as absent) is part of the shape already, so two inputs of one shape compile alike.
 * `shape` answers undefined for an input whose statement is built and compiled for it alone, as
 * Kysely would (a shape too rare to keep: a batch of many rows).
 *
 * On PostgreSQL the compiled text is also a named prepared statement on each connection, parsed
 * and planned once per connection rather than at each run.
 */
export function preparedStatement<I extends object, O>(
  build: (ctx: PreparingContext, values: I, input: I) => CompiledQuery<O>,
  shape: (input: I) => string | undefined = () => "",
): (ctx: PreparingContext, input: I) => Promise<QueryResult<O>> {
  const compiledByShape = new Map<string, Compiled>();
  return (ctx, input) => {
    const chosen = shape(input);
    if (chosen === undefined) return ctx.db.executeQuery<O>(build(ctx, input, input));
    const key = `${ctx.dialect.name}|${chosen}|${structureOf(input)}`;
    let compiled = compiledByShape.get(key);
    if (!compiled) {
      compiled = compile(build(ctx, standIns(input, []) as I, input));
      if (ctx.dialect.name === "postgres") registerPostgresName(compiled.sql);
      compiledByShape.set(key, compiled);
    }
    const parameters = compiled.values.map((value) =>
      value instanceof Slot ? valueAt(input, value) : value.fixed,
    );
    return ctx.db.executeQuery<O>({
      sql: compiled.sql,
      query: compiled.query,
      queryId: compiled.queryId,
      parameters,
    });
  };
}

function compile(query: CompiledQuery<unknown>): Compiled {
  const { sql, query: node, queryId, parameters } = query;
  return {
    sql,
    query: node,
    queryId,
    values: parameters.map((value) => (value instanceof Slot ? value : { fixed: value })),
  };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && Object.getPrototypeOf(value) === Object.prototype;
}

/** The input with every value replaced by its stand-in, down into arrays and plain objects. */
function standIns(value: unknown, path: ReadonlyArray<string | number>): unknown {
  // Left out as Kysely leaves out an undefined column value.
  if (value === undefined) return undefined;
  if (Array.isArray(value)) return value.map((element, index) => standIns(element, [...path, index]));
  if (!isPlainObject(value)) return new Slot(path);
  const values: Record<string, unknown> = {};
  for (const [key, element] of Object.entries(value)) values[key] = standIns(element, [...path, key]);
  return values;
}

function valueAt(input: unknown, slot: Slot): unknown {
  let value = input;
  for (const step of slot.path) value = (value as Record<string | number, unknown>)[step];
  return value;
}

/** The keys and lengths of the input, of its objects and arrays: what the SQL's shape follows. */
function structureOf(value: unknown): string {
  if (Array.isArray(value)) {
    let text = `[${value.length}`;
    for (const element of value)
      if (typeof element === "object" && element !== null) text += structureOf(element);
    return `${text}]`;
  }
  if (!isPlainObject(value)) return "";
  let text = "{";
  for (const key in value) if (value[key] !== undefined) text += `${key}${structureOf(value[key])},`;
  return `${text}}`;
}

function registerPostgresName(sql: string): void {
  if (!postgresNames.has(sql)) postgresNames.set(sql, `runyard_${postgresNames.size + 1}`);
}
