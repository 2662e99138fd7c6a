import { spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { withoutCredentials } from "../core/config-env.js";
import { cliVersion, VERSION_TIMEOUT_MS } from "./availability.js";
import { LineSplitter } from "./cli-agent.js";
import { adapterFor } from "./registry.js";
import type { AgentPackage, RunnerEnv } from "./types.js";

export interface InstallOptions {
  /** `<runyard home>/agents`: each agent gets `<agentsHome>/<name>`. */
  agentsHome: string;
  /** The environment npm runs in (its PATH, proxy and registry settings). */
  env: RunnerEnv;
  /** Each line of progress: what runyard does, and npm's own output. */
  onProgress: (line: string) => void;
}

export type InstallResult =
  | { name: string; ok: true; path: string; version: string }
  | { name: string; ok: false; error: string; hint: string };

/**
 * `runyard agents install`: each agent's pinned, known-good CLI from npm into runyard's home,
 * one npm prefix per agent, so versions never clash and removing one is removing a folder.
 * The CLIs are not dependencies of runyard's own package: together they weigh over 1.5 GB.
 * The installs run side by side (one npm each, their progress lines named by agent): most of an
 * install is waiting on the registry and on each CLI's own install script. One failing does not
 * hold the others back. Results come in the order of `names`.
 */
export function installAgents(names: readonly string[], options: InstallOptions): Promise<InstallResult[]> {
  return Promise.all(
    names.map(async (name): Promise<InstallResult> => {
      const pkg = adapterFor(name)?.package;
      if (!pkg) {
        return {
          name,
          ok: false,
          error: `${name} is not an agent CLI runyard installs`,
          hint: "Run `runyard agents` for the agents runyard knows.",
        };
      }
      return installPackage(name, pkg, options);
    }),
  );
}

/** Installs one package into `<agentsHome>/<name>` and checks that its command runs. */
export async function installPackage(
  name: string,
  pkg: AgentPackage,
  options: InstallOptions,
): Promise<InstallResult> {
  const prefix = join(options.agentsHome, name);
  const spec = `${pkg.name}@${pkg.version}`;
  options.onProgress(`${name}: installing ${spec} into ${prefix}`);
  mkdirSync(prefix, { recursive: true });
  const npm = await runNpm(
    ["install", "--prefix", prefix, "--no-audit", "--no-fund", "--no-save", "--loglevel=http", spec],
    options,
    (line) => options.onProgress(`${name}: ${line}`),
  );
  if (npm.spawnError) {
    return {
      name,
      ok: false,
      error: `cannot run npm: ${npm.spawnError}`,
      hint: "Install Node.js with npm (https://nodejs.org), or put npm on PATH.",
    };
  }
  if (npm.exitCode !== 0) {
    const unreachable =
      /E(NOTFOUND|CONNREFUSED|CONNRESET|TIMEDOUT|AI_AGAIN|NETUNREACH|HOSTUNREACH)|network/i.test(npm.output);
    const last = npm.output.trim().split("\n").slice(-3).join(" | ");
    return {
      name,
      ok: false,
      error: `npm install ${spec} failed (exit code ${npm.exitCode}): ${last}`,
      hint: unreachable
        ? "The npm registry is unreachable: check the network, or point npm at a mirror (npm config set registry URL, or NPM_CONFIG_REGISTRY)."
        : "Read npm's output above; `npm install` of the same package by hand shows the same error.",
    };
  }
  const path = join(prefix, "node_modules", ".bin", pkg.bin);
  const version = await cliVersion(path, options.env);
  if (version === null) {
    return {
      name,
      ok: false,
      error: `${spec} was installed, but \`${path} --version\` did not print a version within ${VERSION_TIMEOUT_MS / 1000} s`,
      hint: "The CLI may need a newer Node.js or a platform package npm skipped, or the machine was too busy to start it: run it by hand to see why, and install again.",
    };
  }
  options.onProgress(`${name}: ${pkg.bin} ${version} ready at ${path}`);
  return { name, ok: true, path, version };
}

interface NpmOutcome {
  exitCode: number | null;
  spawnError?: string;
  /** The tail of npm's output, for the error message. */
  output: string;
}

function runNpm(
  args: string[],
  options: InstallOptions,
  onLine: (line: string) => void,
): Promise<NpmOutcome> {
  return new Promise((resolve) => {
    // runyard's own credentials stay out of npm's lifecycle scripts.
    const child = spawn("npm", args, {
      env: withoutCredentials(options.env),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    const lines = new LineSplitter((line) => {
      const trimmed = line.trimEnd();
      if (!trimmed) return;
      output = `${output}${trimmed}\n`.slice(-8192);
      onLine(trimmed);
    });
    const onData = (chunk: Buffer) => lines.push(chunk.toString("utf8"));
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("error", (error) => resolve({ exitCode: null, spawnError: error.message, output }));
    child.on("close", (exitCode) => {
      lines.end();
      resolve({ exitCode, output });
    });
  });
}
