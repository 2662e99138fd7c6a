/**
 * Docker's own memory notation (`docker run --memory`): a number of bytes, or one with the unit
 * k, m or g (binary, as Docker reads them; `256mb`, `256MiB` are taken too). Undefined for
 * anything else.
 */
export function parseMemorySize(value: string | number): number | undefined {
  const text = String(value).trim().toLowerCase();
  const match = /^(\d+(?:\.\d+)?)\s*([kmg]?)(?:i?b)?$/.exec(text);
  if (!match) return undefined;
  const bytes = Math.floor(Number(match[1]) * memoryUnits[match[2]!]!);
  return bytes > 0 ? bytes : undefined;
}

/** Docker refuses less at container creation, which would fail every start. */
export const minimumContainerMemory = 6 * 1024 * 1024;

const memoryUnits: Record<string, number> = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/** A size for people: KiB under a MiB, else MiB with one decimal; "-" when there is none. */
export function showBytes(bytes: number | null): string {
  if (bytes === null) return "-";
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(0)} KiB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}
