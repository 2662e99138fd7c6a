import { RunyardError } from "../core/errors.js";

/*
 * How values become the portable columns of the schema (schema.ts: text, integer, bigint, real)
 * and are read back: JSON as text, bigints as numbers, timestamps as ISO-8601 UTC text, the same
 * on SQLite and PostgreSQL.
 */

/** JSON text for a value; `undefined` is stored as `null`. */
export function encodeJson(value: unknown): string {
  return JSON.stringify(value) ?? "null";
}

export function decodeJson<T = unknown>(text: string): T {
  return JSON.parse(text) as T;
}

/** A bigint column's value as a number (seqs stay far below 2^53). */
export function int(value: number | string | bigint): number {
  return typeof value === "number" ? value : Number(value);
}

/** A timestamp in the one stored form, `YYYY-MM-DDTHH:mm:ss.sssZ`, so text order is time order. */
export function isoTime(value: string | Date): string {
  const date = typeof value === "string" ? new Date(value) : value;
  if (Number.isNaN(date.getTime())) {
    throw new RunyardError("INVALID_INPUT", `not a timestamp: ${String(value)}`, {
      hint: "Give timestamps as ISO-8601 text, e.g. 2026-01-31T12:00:00.000Z.",
    });
  }
  return date.toISOString();
}

export function isoTimeOrNull(value: string | null | undefined): string | null {
  return value === null || value === undefined ? null : isoTime(value);
}

/** The stored key of "no tenant": tenant ids are never empty, and a key column holds no null. */
export const noTenant = "";
export const tenantKey = (tenantId: string | null): string => tenantId ?? noTenant;
export const tenantOf = (key: string): string | null => (key === noTenant ? null : key);
