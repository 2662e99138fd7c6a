import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

/**
 * A helper compiled by `npm install` (native/build.sh) into the package root: two folders up
 * from src/exec, dist/exec and the CLI bundle's folder, three from the benchmarks'
 * dist-bench/src/exec. The first candidate when none exists (the caller says what is missing).
 */
export function nativeHelperPath(
  name: "fork-server" | "egress-forward" | "cwd-check" | "sandbox-holder",
): string {
  const candidates = [`../../native/build/${name}`, `../../../native/build/${name}`].map((relative) =>
    fileURLToPath(new URL(relative, import.meta.url)),
  );
  return candidates.find((path) => existsSync(path)) ?? candidates[0]!;
}
