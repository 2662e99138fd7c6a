import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * The path of a real agent CLI for tests, installed once per machine with npm into
 * `$RUNYARD_AGENTS_DIR` (default /tmp/runyard-agent-clis) under `<name>@<version>`, so a pin
 * change installs the new version beside the old one instead of reusing it.
 *
 * `$RUNYARD_TEST_AGENTS_HOME` (`<home>/agents` of `runyard agents install`) is looked in first.
 *
 * Returns undefined when it cannot be installed (no registry, no npm), so a test may skip
 * locally; under CI=true that throws instead, because CI must run the real CLI.
 */
export function agentCli(name: string, pkg: string, version: string, bin: string): string | undefined {
  // CI installs the pinned CLIs the way users do (`runyard agents install`, see .ci/run).
  const installed = process.env.RUNYARD_TEST_AGENTS_HOME;
  if (installed && existsSync(join(installed, name, "node_modules", ".bin", bin))) {
    return join(installed, name, "node_modules", ".bin", bin);
  }
  const root = process.env.RUNYARD_AGENTS_DIR ?? join(tmpdir(), "runyard-agent-clis");
  const prefix = join(root, `${name}@${version}`);
  const path = join(prefix, "node_modules", ".bin", bin);
  if (existsSync(path)) return path;
  const failure = install(root, prefix, `${pkg}@${version}`);
  if (failure === undefined && existsSync(path)) return path;
  const message = `agent CLI ${name} (${pkg}@${version}) could not be installed into ${prefix}: ${failure ?? `no ${bin} after install`}`;
  if (process.env.CI === "true") throw new Error(message);
  process.stderr.write(`${message}; skipping its tests\n`);
  return undefined;
}

/**
 * Installs into a folder of its own and renames it into place, so test files that ask for the
 * same CLI at once never see a half-installed one; the loser of the rename drops its copy.
 */
function install(root: string, prefix: string, spec: string): string | undefined {
  mkdirSync(root, { recursive: true });
  const staging = `${prefix}.installing-${process.pid}-${Date.now()}`;
  mkdirSync(staging, { recursive: true });
  try {
    const result = spawnSync(
      "npm",
      ["install", "--prefix", staging, "--no-audit", "--no-fund", "--loglevel=error", spec],
      { encoding: "utf8", timeout: 600_000 },
    );
    if (result.error) return result.error.message;
    if (result.status !== 0) return `npm exited ${result.status}: ${result.stderr.trim().slice(-2000)}`;
    try {
      renameSync(staging, prefix);
    } catch (error) {
      if (!existsSync(prefix)) return (error as Error).message;
    }
    return undefined;
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}
