/** Kubernetes resource quantities as a kubelet turns them into Docker limits. */

const binary: Record<string, number> = {
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};
const decimal: Record<string, number> = {
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  "": 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
};

/** `512Mi` -> 536870912, `1.5G` -> 1500000000, `250m` -> 0.25, `2` -> 2; undefined when it does not parse. */
export function parseQuantity(text: string | number): number | undefined {
  if (typeof text === "number") return text;
  const m = /^([+-]?\d+(?:\.\d+)?|[+-]?\.\d+)(?:e([+-]?\d+))?(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?$/.exec(
    text.trim(),
  );
  if (!m) return undefined;
  const value = Number(m[1]) * 10 ** Number(m[2] ?? 0);
  const suffix = m[3] ?? "";
  return value * (binary[suffix] ?? decimal[suffix] ?? 1);
}

/** A memory limit in bytes (whole). */
export const memoryBytes = (text: string | number): number | undefined => {
  const value = parseQuantity(text);
  return value === undefined ? undefined : Math.ceil(value);
};

/** A CPU limit in Docker's NanoCpus: `500m` -> 500000000. */
export const nanoCpus = (text: string | number): number | undefined => {
  const value = parseQuantity(text);
  return value === undefined ? undefined : Math.round(value * 1e9);
};
